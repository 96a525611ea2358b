"""``python -m grenade.deployers.lite``: the maintainer commands of ``cli``."""

import sys

from .cli import main

sys.exit(main())
