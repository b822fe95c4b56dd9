"""occkit.models."""
