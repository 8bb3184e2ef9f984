r"""``python -m captum_pi``: the ``captum-pi`` command (see :mod:`captum_pi.cli`)."""
import sys

from captum_pi.cli import main

sys.exit(main())
