"""Canned responses' variables: {{customer.name}}, {{customer.first_name}}, {{agent.name}}, {{agent.first_name}} and
{{attributes.<key>}} (order numbers and the like, from the attributes the customer's messages carried). A variable
with no value is left out and named, so the agent sees what to fill in before sending."""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLE = re.compile(r"\{\{\s*([a-z_]+)\.([A-Za-z0-9_.-]+)\s*\}\}")


def first_name(name: str) -> str:
    return name.strip().split()[0] if name.strip() else ""


def render(body: str, customer_name: str, agent_name: str, attributes: Mapping[str, str]) -> tuple[str, list[str]]:
    """The text with its variables filled in, and the variables that had no value (left empty)."""
    values = {
        ("customer", "name"): customer_name.strip(), ("customer", "first_name"): first_name(customer_name),
        ("agent", "name"): agent_name.strip(), ("agent", "first_name"): first_name(agent_name),
    }
    missing: list[str] = []

    def fill(m: re.Match[str]) -> str:
        scope, key = m.group(1), m.group(2)
        value = attributes.get(key, "") if scope == "attributes" else values.get((scope, key), "")
        if not value:
            missing.append(f"{scope}.{key}")
        return value

    return VARIABLE.sub(fill, body), missing
