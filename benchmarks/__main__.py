"""``python -m benchmarks [--quick] [...]``: see :mod:`benchmarks.cli`."""

import sys

from benchmarks.cli import main

sys.exit(main())
