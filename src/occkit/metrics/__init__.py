"""occkit.metrics."""
