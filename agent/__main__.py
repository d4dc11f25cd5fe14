"""`python -m printstation.agent`: the `printstation` command."""

import sys

from printstation.agent.surfaces.cli import main

sys.exit(main())
