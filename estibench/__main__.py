"""``python -m estibench`` is ``estibench``."""
import sys

from .cli import main

sys.exit(main())
