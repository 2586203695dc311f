"""Hooks pytest-inferlab calls; implement them in a conftest.py or a plugin."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_inferlab_update_environment(config: pytest.Config, environment: dict[str, Any]) -> None:
    """Add or change facts in the environment stored with every record of this session.

    Called once per process, after the built-in facts (versions, device, commit) are collected.
    Facts added here are stored; they do not change the machine fingerprint.

    Example (conftest.py)::

        def pytest_inferlab_update_environment(config, environment):
            environment["container_image"] = os.environ.get("IMAGE_TAG")
    """
