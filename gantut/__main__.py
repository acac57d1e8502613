"""``python -m gantut train ...`` / ``python -m gantut sample ...``: see :mod:`gantut.cli`."""

import sys

from .cli import main

sys.exit(main())
