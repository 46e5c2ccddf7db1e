"""``python -m modelhaul.cli``: the same as the ``modelhaul`` console script."""

import sys

from modelhaul.cli import main

sys.exit(main())
