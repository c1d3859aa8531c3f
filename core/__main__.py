"""``python -m doctune.core`` is the ``doctune`` command."""
import sys

from doctune.core.cli import main

if __name__ == "__main__":  # not when a model's child process (core.isolation) imports it
    sys.exit(main())
