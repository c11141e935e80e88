"""``python -m dualstream_geo``: the ``dualstream-geo`` command."""

import sys

from .cli import main

sys.exit(main())
