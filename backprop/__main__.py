"""``python -m backprop``: the same as the ``backprop`` console script."""

import sys

from .cli import main

sys.exit(main())
