"""Shared test setup: integration tests are skipped only where they cannot run (not root)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="integration tests need root to boot the lab fleet")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
