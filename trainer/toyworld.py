"""Moved to `trainer/toy/world.py`; this name stays importable for existing callers.

The module object is the same one (monkeypatching either name patches both).
"""

import sys

from trainer.toy import world as _moved

sys.modules[__name__] = _moved
