"""`python -m rxnb worker …` (the same as the `rxnb` command)."""

import sys

from rxnb.cli import main

sys.exit(main())
