"""Loss functions (pure), one file per family, e.g.:

- :mod:`occkit.losses.occupancy`: class-weighted voxel cross-entropy, Lovász-softmax, log-inverse
  class weights.
- :mod:`occkit.losses.depth`: depth-bin targets from LiDAR or depth maps, the LSS depth loss.
- :mod:`occkit.losses.render`: losses on rendered depth / semantics.
"""
