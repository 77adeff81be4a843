"""``python -m reports`` is the ``estibench`` command."""
import sys

from .cli import main

sys.exit(main())
