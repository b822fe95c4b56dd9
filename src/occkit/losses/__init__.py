"""occkit.losses."""
