"""`python -m compiler` is the `niche` command."""

import sys

from compiler.cli import run

sys.exit(run())
