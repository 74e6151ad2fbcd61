"""Routing config from TOML-shaped dicts: valid shapes build, invalid ones name the setting."""

from __future__ import annotations

from typing import Any

import pytest

from hub.routing.config import RoutingConfig, RoutingConfigError
from hub.routing.types import Stage, Strategy


def test_builds_queues_agents_and_rules() -> None:
    cfg = RoutingConfig.from_dict(
        {
            "default_queue": "general",
            "queues": {
                "general": {},
                "billing": {
                    "strategy": "skills",
                    "skills": {"billing": 5},
                    "stages": [{"after": 30, "skills": {"billing": 1}}, {"after": 90, "overflow": "general"}],
                },
            },
            "agents": [{"id": 3, "queues": ["billing"], "capacity": {"chat": 2}, "skills": {"billing": 4}}],
            "rules": [{"queue": "billing", "keywords": "invoice"}],
        }
    )
    billing = cfg.queues["billing"]
    assert billing.strategy is Strategy.SKILLS
    assert billing.stages == (Stage(30.0, {"billing": 1}), Stage(90.0, overflow="general"))
    assert billing.levels == [{"billing": 5}, {"billing": 1}, {"billing": 1}]
    assert billing.floor == {"billing": 1}
    assert cfg.agents[3].capacity == {"chat": 2} and cfg.agents[3].exclusive == frozenset({"voice"})
    assert cfg.rules.default == "general"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"queues": {}}, r"routing\.queues: needs at least one"),
        ({"queues": {"a": {"strategy": "random"}}}, r"queues\.a\.strategy: unknown 'random'"),
        ({"queues": {"a": {"offer_timeout": 0}}}, r"queues\.a\.offer_timeout: must be > 0"),
        ({"queues": {"a": {"stages": [{"after": 5}]}}}, r"stages\[0\]: give exactly one of"),
        ({"queues": {"a": {"stages": [{"after": 5, "overflow": "b"}]}}}, r"overflow: unknown queue 'b'"),
        (
            {"queues": {"a": {"stages": [{"after": 9, "callback": True}, {"after": 5, "callback": True}]}}},
            r"'after' must increase",
        ),
        ({"queues": {"a": {}}, "agents": [{"id": 0}]}, r"agents\[0\]\.id: required, a positive integer"),
        ({"queues": {"a": {}}, "agents": [{"id": 1, "queues": ["b"]}]}, r"agents\[0\]\.queues: unknown queue 'b'"),
        ({"queues": {"a": {}}, "agents": [{"id": 1, "capacity": {"fax": 1}}]}, r"agents\[0\]\.capacity"),
        ({"queues": {"a": {}}, "agents": [{"id": 1}, {"id": 1}]}, r"agents\[1\]\.id: duplicate"),
        ({"queues": {"a": {}}, "rules": [{"queue": "b", "tags": "x"}]}, r"routing\.rules\[0\]\.queue: unknown"),
        ({"queues": {"a": {}}, "missed_offers": 0}, r"missed_offers: must be an integer >= 1"),
        ({"queues": {"a:b": {}}}, r"without ':'"),
        ({"queues": {"a": {}}, "colour": 1}, r"unknown setting\(s\) colour"),
    ],
)
def test_invalid_config_is_explained(raw: Any, message: str) -> None:
    with pytest.raises(RoutingConfigError, match=message):
        RoutingConfig.from_dict(raw)
