"""``python -m goomerang_io``: the goomerang command line."""

import sys

from .cli import main

sys.exit(main())
