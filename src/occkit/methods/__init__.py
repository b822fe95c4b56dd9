"""Training recipes: one file per method (model + losses + what a training step does)."""
