"""``python -m simulator.cli``: the same as the ``raftsim`` command."""

import sys

from .main import main

sys.exit(main())
