import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from conftest_engine import backed_up, env, install, installation, repo  # noqa: E402,F401  (fixtures)
