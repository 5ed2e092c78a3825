"""`python -m classsync` runs the classsync command."""

import sys

from classsync.cli import main

sys.exit(main())
