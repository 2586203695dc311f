"""Run ids: when a run started (UTC, sortable) and a random tail, so two runs in one second differ."""

from __future__ import annotations

import datetime as dt
import secrets


def new_run_id() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
