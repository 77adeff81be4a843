"""``python -m reports`` is the ``estibench`` command."""
import sys

from .cli import main

if __name__ == "__main__":  # not when a worker process imports it (reports.parallel)
    sys.exit(main())
