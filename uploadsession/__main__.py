"""`python -m uploadsession` is the `uploadsession` command (a tool: not deployed)."""

import sys

from uploadsession.cli import main

sys.exit(main())
