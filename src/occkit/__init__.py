"""occkit: a pure-PyTorch toolkit for 3D semantic occupancy.

Importing the package does no work: submodules are imported where they are used.
"""

#: The release, as pyproject.toml's ``version`` says it (tests/test_public_api.py checks they agree); what
#: changed for users between releases is in CHANGELOG.md.
__version__ = "0.2.0"
