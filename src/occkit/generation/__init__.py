"""occkit.generation."""
