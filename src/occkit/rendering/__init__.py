"""occkit.rendering."""
