"""Geometry: rigid transforms, pinhole cameras, voxel grids and voxel ray traversal (pure torch)."""
