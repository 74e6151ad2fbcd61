"""The API docs page: Swagger UI served by the hub from its vendored files (no other origin), under a CSP that lets
it run, showing the OpenAPI document by area, and "Try it out" answering from this hub in headless Chromium."""

from __future__ import annotations

import os
from typing import Any

import pytest

from hub.api.docs import SWAGGER_UI_VERSION
from tests.api.client import Client
from tests.e2e.conftest import SHOTS

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"  # the page does not depend on the database


async def test_docs_page_and_its_files_are_local_and_public(client: Client) -> None:
    page = await client.get("/api/docs")  # no token: the docs are public, like the document they show
    assert page.status == 200
    html = await page.text()
    assert "http" not in html.replace("http-equiv", ""), "every file comes from this hub"
    assert f"swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}" in html
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "connect-src 'self'" in csp
    for name, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css"), ("docs.js", "javascript")):
        resp = await client.get(f"/api/docs/{name}")
        assert resp.status == 200 and kind in resp.headers["Content-Type"], name
    assert (await client.get("/api/docs/LICENSE")).status == 404  # only the page's files are served
    assert (await client.get("/api/docs/..%2fdocs.py")).status == 404
    assert (await client.get("/api/docs/")).status == 200


async def test_openapi_tags_every_operation_and_names_this_hub(client: Client) -> None:
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert spec["servers"] == [{"url": str(client.make_url("")).rstrip("/"), "description": "this hub"}]
    declared = [t["name"] for t in spec["tags"]]
    assert {"Conversations", "Customers", "Routing", "Agents"} <= set(declared)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op["tags"] and set(op["tags"]) <= set(declared), (method, path)
    assert spec["paths"]["/api/v1/conversations/{id}/call"]["post"]["tags"] == ["Calls"]
    assert spec["paths"]["/api/v1/inbox"]["get"]["tags"] == ["Conversations"]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")
async def test_try_it_out_in_chromium(client: Client, admin_headers: dict[str, str]) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    token = admin_headers["Authorization"].split()[1]
    url = str(client.make_url("")).rstrip("/")
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            outside: list[str] = []
            failed: list[str] = []
            page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url) else None)
            await page.goto(url + "/api/docs")
            await page.wait_for_selector("#operations-tag-Conversations")
            await page.click("button.authorize")
            await page.fill(".modal-ux input", token)
            await page.click(".modal-ux button.authorize")
            await page.click(".modal-ux button.btn-done")
            await page.click("#operations-Conversations-get_api_v1_inbox")
            await page.click("#operations-Conversations-get_api_v1_inbox button.try-out__btn")
            await page.click("#operations-Conversations-get_api_v1_inbox button.execute")
            status = page.locator("#operations-Conversations-get_api_v1_inbox .live-responses-table "
                                  ".response .response-col_status")
            await status.wait_for()
            assert (await status.inner_text()).strip() == "200"
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "api-docs.png"))
            assert outside == [], "nothing is fetched from another origin"
            # favicon.ico is the browser's own guess; any other failed load, CSP refusal or script error fails
            assert [u for u in failed if not u.endswith("/favicon.ico")] == [], failed
            assert [m for m in problems if not m.startswith("Failed to load resource")] == [], problems
        finally:
            await browser.close()
