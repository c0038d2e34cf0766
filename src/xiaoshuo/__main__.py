"""``python -m xiaoshuo`` == the ``xiaoshuo`` command."""

import sys

from xiaoshuo.cli import main

if __name__ == "__main__":
    sys.exit(main())
