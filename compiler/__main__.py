"""`python -m compiler` is the `niche` command."""

import sys

from compiler.cli import main

sys.exit(main())
