"""The old name of :mod:`know_thyself.inference.judgments`, for judges logged before the layered layout.

Such a judge's code (stored inside it, run when it loads) imports ``know_thyself.judge``.
Importing that name gives the module at its home now, the same object: nothing else in the
project imports it, and nothing runs unless it is imported.
"""

import sys

from know_thyself.inference import judgments as _home

sys.modules[__name__] = _home
