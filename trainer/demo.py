"""Moved to `trainer/toy/demo.py`; this name stays importable for existing callers.

The module object is the same one (monkeypatching either name patches both).
"""

import sys

from trainer.toy import demo as _moved

sys.modules[__name__] = _moved
