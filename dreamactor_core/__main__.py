"""``python -m dreamactor_core``: see ``app/cli.py``."""

import sys

from .app.cli import main

sys.exit(main())
