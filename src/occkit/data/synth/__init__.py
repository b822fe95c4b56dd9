"""occkit.data.synth."""
