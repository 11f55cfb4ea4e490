"""``python -m simulator``: the same as the ``raftsim`` command."""

import sys

from .cli import main

sys.exit(main())
