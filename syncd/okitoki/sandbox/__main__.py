"""``python -m syncd.okitoki.sandbox``: the same as ``syncd sandbox``."""

import sys

from .cli import main

sys.exit(main())
