"""``python -m sipharness`` runs the command line."""

import sys

from sipharness.cli import main

sys.exit(main())
