"""occkit.priors."""
