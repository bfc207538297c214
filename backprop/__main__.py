"""``python -m backprop``: the same as the ``backprop`` console script."""

import sys

from .app.cli import main

sys.exit(main())
