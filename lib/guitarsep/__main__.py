"""``python -m guitarsep ...`` = the ``guitarsep`` command (:mod:`guitarsep.app.cli`)."""
import sys

from guitarsep.app.cli import main

sys.exit(main())
