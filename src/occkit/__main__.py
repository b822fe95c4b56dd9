"""``python -m occkit ...``: the same command line as the ``occkit`` script, for environments where the
script is not on PATH (a venv not activated, a Ray worker, a cluster job that names the interpreter)."""

import sys

from occkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
