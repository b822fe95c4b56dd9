"""occkit.viz."""
