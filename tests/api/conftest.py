"""Fixtures of the API tests: a hub with two queues (the OpenAPI document and the checked client: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hub.config import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_url: str) -> Settings:
    return make_settings(db_url, HUB_ROUTING__QUEUES='{"support": {"title": "Support"}, "sales": {}}')

