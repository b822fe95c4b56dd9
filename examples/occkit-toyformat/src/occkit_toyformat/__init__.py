"""occkit-toyformat: a dataset format from another package (see ``format.py``)."""
