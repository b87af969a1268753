"""``python -m synthloop.cli``: the same as the ``synthloop`` command."""

import sys

from synthloop.cli import run

sys.exit(run())
