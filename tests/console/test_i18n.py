"""The console's catalogues: every key the JavaScript asks t() for is in every locale, every locale has exactly the
English keys, and a translation keeps the English placeholders and plural forms (a {name} dropped or misspelt would
show as a literal brace to Spanish-speaking agents)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

JS = Path(__file__).parents[2] / "hub" / "console" / "static" / "js"
LOCALES = JS / "locales"
# One entry per line, as the catalogues are written: "key": "text", or "key": { one: "...", other: "..." }.
ENTRY = re.compile(r'^\s*"([\w.-]+)":\s*(.+?),?\s*$')
FORM = re.compile(r'(\w+):\s*"((?:[^"\\]|\\.)*)"')
TEXT = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
# t("key") or t('key'), after something that is not part of a name (so format("x") or at("x") do not count).
CALL = re.compile(r'(?<![\w.$])t\(\s*(["\'`])([^"\'`]*)\1')
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalogue(path: Path) -> dict[str, str | dict[str, str]]:
    entries: dict[str, str | dict[str, str]] = {}
    for line in path.read_text().splitlines():
        m = ENTRY.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        assert key not in entries, f"{path.name}: {key} twice"
        if value.startswith("{"):
            entries[key] = dict(FORM.findall(value))
            assert entries[key], f"{path.name}: {key} has no plural forms"
        else:
            text = TEXT.match(value)
            assert text, f"{path.name}: {key} is not one quoted string on its line"
            entries[key] = text.group(1)
    return entries


def used_keys() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for path in sorted(JS.rglob("*.js")):
        if path.parent == LOCALES:
            continue
        for m in CALL.finditer(path.read_text()):
            used.setdefault(m.group(2), []).append(path.name)
    return used


def test_the_scanner_finds_calls() -> None:
    found = [m.group(2) for m in CALL.finditer('a(t("x.y"), t(\'p.q\', {n: 1})); format("no"); it("no"); s.t("no")')]
    assert found == ["x.y", "p.q"]


def test_every_key_used_is_in_english() -> None:
    english = catalogue(LOCALES / "en.js")
    used = used_keys()
    assert len(used) > 100  # the scan reads the console, not an empty folder
    dynamic = {k: files for k, files in used.items() if "${" in k}
    assert not dynamic, f"keys built at run time cannot be checked; spell each one out: {dynamic}"
    missing = {k: sorted(set(files)) for k, files in used.items() if k not in english}
    assert not missing, f"used in the console but missing from en.js: {missing}"


@pytest.mark.parametrize("locale", sorted(p.name for p in LOCALES.glob("*.js") if p.name != "en.js"))
def test_every_locale_has_the_english_keys(locale: str) -> None:
    english = catalogue(LOCALES / "en.js")
    other = catalogue(LOCALES / locale)
    assert sorted(set(english) - set(other)) == [], f"missing from {locale}"
    assert sorted(set(other) - set(english)) == [], f"in {locale} but not in en.js"
    for key, text in english.items():
        theirs = other[key]
        forms = text.values() if isinstance(text, dict) else [text]
        want = set().union(*(PLACEHOLDER.findall(s) for s in forms))
        if isinstance(text, dict):
            assert isinstance(theirs, dict) and "other" in theirs, f"{locale}: {key} needs plural forms with 'other'"
            got = set().union(*(PLACEHOLDER.findall(s) for s in theirs.values()))
        else:
            assert isinstance(theirs, str), f"{locale}: {key} has plural forms where English has none"
            got = set(PLACEHOLDER.findall(theirs))
        assert got == want, f"{locale}: {key} has placeholders {got}, English {want}"


def test_every_english_key_is_used() -> None:
    unused = sorted(set(catalogue(LOCALES / "en.js")) - set(used_keys()))
    assert not unused, f"in en.js but used nowhere (remove them): {unused}"
