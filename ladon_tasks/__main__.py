"""``python -m ladon_tasks`` is the ``ladon-tasks`` command."""

import sys

from ladon_tasks.cli import main

sys.exit(main())
