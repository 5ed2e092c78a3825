"""`python -m classsync.sandbox`: run the QBO emulator in the foreground."""

import sys

from classsync.sandbox.cli import main

sys.exit(main())
