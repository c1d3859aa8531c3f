"""``python -m doctune.core`` is the ``doctune`` command."""
import sys

from doctune.core.cli import main

sys.exit(main())
