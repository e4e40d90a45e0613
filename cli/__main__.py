"""``python -m cli``: the same as the ``vapi-agent`` console script."""

import sys

from cli.app import main

sys.exit(main())
