"""Entry script of the packaged app (PyInstaller): the window, or the CLI with ``--cli``."""
import sys

from doctune.desktop.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
