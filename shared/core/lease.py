"""The ledger lease: how long a run owns a failed payment, and the run it has to outlive."""

from __future__ import annotations

import datetime as dt

# deploy.sh deploys the recover function with this timeout, so no run lasts longer.
RECOVER_TIMEOUT = dt.timedelta(seconds=120)
# Longer than any run: a run that is still sending never loses its payment to another.
DEFAULT_LEASE = dt.timedelta(seconds=180)
