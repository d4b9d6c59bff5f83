"""``python -m layerlab``: the same command line as the ``layerlab`` script."""

import sys

from .cli import main

sys.exit(main())
