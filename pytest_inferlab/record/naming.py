"""File names of what the lab writes: one place for records, baselines and their older names.

A record is ``<test slug>-<spec_id>.json`` in its run folder; a baseline is ``<test slug>-<hash of
the exact test id>-<spec_id>.json`` in its machine's folder (ids that slug alike get files of
their own). Changing a name here orphans files on disk: add the old form to the legacy names.
"""

from __future__ import annotations

import hashlib
import re

RECORD_SLUG_LIMIT = 120
BASELINE_SLUG_LIMIT = 80


def safe_name(text: str, limit: int = RECORD_SLUG_LIMIT) -> str:
    """A file-name-safe slug of a test id (the spec_id keeps names unique)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return slug[:limit] or "case"


def record_filename(test_id: str, spec_id: str) -> str:
    return f"{safe_name(test_id)}-{spec_id}.json"


def baseline_filename(test_id: str, spec_id: str) -> str:
    """A readable slug, then a hash of the exact test id: ids that slug alike (``a/b``, ``a_b``,
    ``a:b``) or differ only past the slug's length get files of their own."""
    digest = hashlib.sha256(test_id.encode("utf-8")).hexdigest()[:12]
    return f"{safe_name(test_id, BASELINE_SLUG_LIMIT)}-{digest}-{spec_id}.json"


def legacy_baseline_filename(test_id: str, spec_id: str) -> str:
    """The name baselines had before the test id hash (read, and migrated on the next save)."""
    return record_filename(test_id, spec_id)
