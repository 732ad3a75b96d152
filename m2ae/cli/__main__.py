"""``python -m m2ae.cli`` is the console script ``m2ae`` (torchrun needs a module to run)."""
import sys

from . import main

sys.exit(main())
