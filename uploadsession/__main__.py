"""`python -m uploadsession` is the `uploadsession` command."""

import sys

from uploadsession.cli import main

sys.exit(main())
