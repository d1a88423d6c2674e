"""`python -m gatehouse.cli`: the same as the `gatehouse` command."""

import sys

from gatehouse.cli import main

sys.exit(main())
