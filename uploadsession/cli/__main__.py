"""`python -m uploadsession.cli` is the `uploadsession` command."""

import sys

from uploadsession.cli import main

sys.exit(main())
