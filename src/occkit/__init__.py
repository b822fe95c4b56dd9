"""occkit: a pure-PyTorch toolkit for 3D semantic occupancy.

Importing the package does no work: submodules are imported where they are used.
"""

__version__ = "0.1.0"
