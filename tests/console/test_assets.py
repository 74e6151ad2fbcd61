"""The console's files: compressed, cached for good under a version the page names, and never stale."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.console import assets

Client = TestClient[Any, Any]
IMPORT = re.compile(r"""(?:from|import)\s*["'](\.{1,2}/[^"']+)["']""")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # Serving files does not touch the store: one store is enough.
    return f"sqlite:///{tmp_path / 'hub.db'}"


async def test_the_page_names_versioned_files_that_come_compressed_and_cached_for_good(client: Client) -> None:
    page = await client.get("/console/")
    html = await page.text()
    assert page.headers["Cache-Control"] == "no-cache" and page.headers["Content-Type"].startswith("text/html")
    version = assets.current().version
    app_js = f"/console/static/v-{version}/js/app.js"
    assert f'src="{app_js}"' in html
    assert f'href="/console/static/v-{version}/css/console.css"' in html
    preloaded = re.findall(r'rel="modulepreload" href="([^"]+)"', html)
    on_disk = sorted(p.relative_to(assets.STATIC).as_posix() for p in assets.STATIC.rglob("*.js"))
    assert sorted(p.removeprefix(f"/console/static/v-{version}/") for p in preloaded) == on_disk

    resp = await client.get(app_js, headers={"Accept-Encoding": "gzip, deflate"}, auto_decompress=False)
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["Vary"] == "Accept-Encoding"
    assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
    packed = await resp.read()
    original = (assets.STATIC / "js" / "app.js").read_bytes()
    assert gzip.decompress(packed) == original and len(packed) < len(original) / 2

    plain = await client.get(app_js, headers={"Accept-Encoding": "identity"}, auto_decompress=False)
    assert "Content-Encoding" not in plain.headers and await plain.read() == original
    refused = await client.get(app_js, headers={"Accept-Encoding": "gzip;q=0"}, auto_decompress=False)
    assert "Content-Encoding" not in refused.headers


async def test_files_without_the_current_version_are_revalidated(client: Client) -> None:
    for path in ("/console/static/js/app.js", "/console/static/v-0123456789ab/js/app.js"):
        resp = await client.get(path)
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-cache", path
        again = await client.get(path, headers={"If-None-Match": resp.headers["ETag"]})
        assert again.status == 304 and await again.read() == b""


@pytest.mark.parametrize("path", ["js/nope.js", "v-x/js/nope.js", "../handlers.py", "js/../../assets.py",
                                  "%2e%2e/handlers.py", "index.html"])
async def test_only_the_console_files_are_served(client: Client, path: str) -> None:
    resp = await client.get(f"/console/static/{path}")
    assert resp.status == 404, path


def test_every_module_import_resolves_inside_the_versioned_folder() -> None:
    # A relative import that left the folder, or named a missing file, would break the console only once cached.
    files = assets.current().files
    for name in files:
        if not name.endswith(".js"):
            continue
        for target in IMPORT.findall(files[name].body.decode()):
            resolved = (Path(name).parent / target).as_posix()
            parts: list[str] = []
            for part in resolved.split("/"):
                if part == "..":
                    assert parts, f"{name} imports {target}, outside the console's files"
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            assert "/".join(parts) in files, f"{name} imports {target}, which is not served"


def test_the_version_changes_with_any_file(tmp_path: Path) -> None:
    shutil.copytree(assets.STATIC, tmp_path / "static")
    before = assets.build(tmp_path / "static")
    assert before.version == assets.build(tmp_path / "static").version
    css = tmp_path / "static" / "css" / "console.css"
    css.write_text(css.read_text() + "\n/* changed */\n")
    after = assets.build(tmp_path / "static")
    assert after.version != before.version
    assert f"v-{after.version}/js/app.js" in after.page.body.decode()
