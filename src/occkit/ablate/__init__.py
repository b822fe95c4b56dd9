"""``occkit ablate``: an ablation is a file (docs/design.md, sections 7 and 8).

- :mod:`occkit.ablate.spec`: the spec format (documented there), parsing, command-line overrides
  and every check that runs before anything is built.
- :mod:`occkit.ablate.stages`: the shared stages, cached by their inputs, and how any occkit verb's
  options are written from a YAML mapping.
- :mod:`occkit.ablate.scorers`: the table of scorers run on each finished arm.
- :mod:`occkit.ablate.runner`: lanes of subprocesses, locks, resume after any stop.
- :mod:`occkit.ablate.report`: ``results.json``, ``results.md`` and ``curves.png`` from disk.
"""
