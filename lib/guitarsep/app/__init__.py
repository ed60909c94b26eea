"""The app: the ``guitarsep`` command, separation of a user's recording, and listening.

``cli.py`` (every subcommand), ``separate_file.py`` (``guitarsep separate``: a recording + a
score file -> the part's audio, with one-line errors), ``listening.py`` (the interactive panel of
05_listen.ipynb), ``demo_page.py`` (the static listening page under ``figures/demo/``).
"""
