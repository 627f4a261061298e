"""Suite-wide settings.

Hypothesis profiles: `ci/test.sh` runs the `ci` profile (derandomized: the same examples on
every run, so a result can be reproduced from the commit alone); `HYPOTHESIS_PROFILE=explore`
draws fresh random examples each run and keeps failures in `.hypothesis/` for replay.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "explore"))
