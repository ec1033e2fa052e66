"""cnn-lab: the deep-learning CNN lab as reproducible, tracked Kedro experiments."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# OpenMP threads that wait for work sleep instead of spinning: on a busy machine torch's
# spinning threads took cores other jobs needed (docs/performance.md, "Threads"). OpenMP
# reads this once, when torch loads it, so it is set here, before any study imports
# torch, and only if the user has not chosen a policy (export OMP_WAIT_POLICY=ACTIVE).
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
