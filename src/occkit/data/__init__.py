"""Datasets, samples and batches."""
