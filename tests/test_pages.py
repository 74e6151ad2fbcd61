"""Server-side HTML: one escaping template path, no HTML assembled in Python strings, and the console's security
headers on every HTML response (nosniff on every JSON one)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub import pages
from hub.config import Settings

Client = TestClient[Any, Any]
HUB = Path(__file__).parents[1] / "hub"
PAYLOAD = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    # Names from a config written before queue names had to be slugs: they still load, and still must not run.
    queues = {"support": {"title": PAYLOAD}, "<svg onload=alert(3)>": {}}
    return make_settings(None, HUB_ROUTING__QUEUES=json.dumps(queues), HUB_CHANNELS__WEBCHAT__ENABLED="true")


def test_templates_escape_every_value() -> None:
    html = pages.render_text("index.html", channels=[PAYLOAD], queues=[{"name": PAYLOAD, "title": PAYLOAD}],
                             console=True, webchat=True, metrics=True)
    assert "<img" not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&#34;&gt;" in html


async def test_the_index_shows_names_as_text(client: Client) -> None:
    resp = await client.get("/")
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "<img" not in page and "<svg" not in page and "&lt;svg onload=alert(3)&gt;" in page


def _assert_html_headers(headers: Any) -> None:
    csp = headers["Content-Security-Policy"]
    script = next(d for d in csp.split(";") if d.strip().startswith(("script-src", "default-src")))
    assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
    assert "frame-ancestors" in csp and headers["X-Frame-Options"] in ("DENY", "SAMEORIGIN")
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"]


@pytest.mark.parametrize("path", ["/", "/console/", "/chat", "/api/docs"])
async def test_every_html_page_carries_the_security_headers(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 200 and resp.content_type == "text/html", path
    _assert_html_headers(resp.headers)


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/openapi.json", "/api/v1/conversations", "/nowhere"])
async def test_json_and_errors_are_nosniff(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.headers["X-Content-Type-Options"] == "nosniff", path


# f-strings that build markup. Allowed only where every value is passed through html.escape (outgoing email text)
# or where the text is not HTML at all (a terminal hint that shows the widget's <script> tag).
TAG = re.compile(r"<[A-Za-z!/][^>]*>")
NOT_HTML = {("demo/runner.py", "web chat:")}


def _escaped(value: ast.expr) -> bool:
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "escape"
            and isinstance(value.func.value, ast.Name) and value.func.value.id == "html") or (
        isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and _escaped(value.func.value))


def test_no_html_is_assembled_in_python_strings() -> None:
    found = []
    for path in sorted(HUB.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.JoinedStr):
                continue
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            if not TAG.search(text) or any(
                    path.relative_to(HUB).as_posix() == f and text.strip().startswith(s) for f, s in NOT_HTML):
                continue
            values = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
            if not all(_escaped(v) for v in values):
                found.append(f"{path.relative_to(HUB.parent)}:{node.lineno}")
    assert not found, f"HTML built with f-strings (render a template from hub/templates instead): {found}"


def test_only_pages_answers_with_generated_html() -> None:
    """A text/html response is either pages.render or a static file: nobody else hands a str to the browser."""
    found = []
    for path in sorted(HUB.rglob("*.py")):
        if path.name == "pages.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and any(
                    k.arg == "content_type" and isinstance(k.value, ast.Constant) and k.value.value == "text/html"
                    for k in node.keywords):
                if not any(k.arg == "body" for k in node.keywords):
                    found.append(f"{path.relative_to(HUB.parent)}:{node.lineno}")
    assert not found, f"HTML text answered outside hub.pages: {found}"
