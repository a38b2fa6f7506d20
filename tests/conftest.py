import os
import sys

# tools/ are scripts, not an installed package: let tests import them as `tools.<name>`.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
