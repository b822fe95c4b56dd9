"""occkit.rendering: differentiable volume rendering of occupancy grids (pure functions).

- :mod:`~occkit.rendering.rays`: camera rays through pixel centres (all, strided, chosen, random).
- :mod:`~occkit.rendering.sampling`: ray/box slab test, uniform and importance samples.
- :mod:`~occkit.rendering.volrend`: densities from logits, alpha compositing, grid lookups,
  chunked rendering of depth, semantics, features and termination weights.
- :mod:`~occkit.rendering.resampling`: proposal samples replaced by importance samples drawn from
  the proposal's transmittance (LangOcc's released renderer).
- :mod:`~occkit.rendering.fixed_steps`: rendering on fixed steps from the ray origin, read at the
  left edge, zero outside the box (RadOcc's released renderer).
"""
