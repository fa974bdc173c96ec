"""``python -m nnopt.cli``: the ``nnopt`` command."""

import sys

from nnopt.cli import main

sys.exit(main())
