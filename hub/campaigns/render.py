"""A campaign's text with the recipient's variables filled in: `{{name}}`, `{{first_name}}`, `{{identity}}`,
`{{attributes.plan}}`, each with an optional fallback, `{{first_name | fallback: "there"}}`. A variable with no value
and no fallback leaves that recipient out (skipped, with the reason) rather than sending "Hi ,"."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*(?:\|\s*fallback\s*:\s*\"([^\"]*)\"\s*)?\}\}")
_OPEN = re.compile(r"\{\{")
PLAIN = ("name", "first_name", "identity")
ATTRIBUTE = re.compile(r"attributes\.[A-Za-z0-9_-]{1,64}")


class TemplateError(ValueError):
    """A text that is not a valid campaign template; the message says where and what is allowed."""


class Missing(ValueError):
    """A variable has no value for this recipient and no fallback."""


@dataclass(frozen=True)
class Profile:
    """What a recipient's variables come from."""

    name: str
    identity: str
    attributes: Mapping[str, str]

    def value(self, variable: str) -> str:
        if variable == "name":
            return self.name.strip()
        if variable == "first_name":
            return (self.name.split() or [""])[0]
        if variable == "identity":
            return self.identity.partition(":")[2]
        return str(self.attributes.get(variable.removeprefix("attributes."), "")).strip()


def check(text: str) -> list[str]:
    """The variables TEXT uses; raises TemplateError for an unknown variable or a `{{` that is not one."""
    used: list[str] = []
    plain = _VARIABLE.sub("", text)
    if _OPEN.search(plain):
        raise TemplateError('a "{{" that is not a variable: write {{name}} or {{attributes.plan | fallback: "basic"}}')
    for m in _VARIABLE.finditer(text):
        name = m.group(1)
        if name not in PLAIN and not ATTRIBUTE.fullmatch(name):
            raise TemplateError(f"unknown variable {{{{{name}}}}}: use {', '.join(PLAIN)}" + " or attributes.<name>")
        used.append(name)
    return used


def render(text: str, profile: Profile) -> str:
    """TEXT for PROFILE; raises Missing (the reason a recipient is skipped) for a variable with no value."""

    def fill(m: re.Match[str]) -> str:
        value = profile.value(m.group(1))
        if value:
            return value
        if m.group(2) is not None:
            return m.group(2)
        raise Missing(f"no value for {{{{{m.group(1)}}}}} and no fallback")

    return _VARIABLE.sub(fill, text)
