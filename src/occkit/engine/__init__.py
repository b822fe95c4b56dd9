"""occkit.engine."""
