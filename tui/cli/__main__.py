"""``python -m tui.cli`` runs the command line, like the ``llamadeck`` script."""

import sys

from tui.cli import main

sys.exit(main())
