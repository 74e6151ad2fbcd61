"""The API docs page at /api/docs: Swagger UI (vendored, pinned, served by the hub; see docs_static/VENDORED.md)
reading /api/v1/openapi.json, so a developer can read the API and "Try it out" against this hub."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub import pages

SWAGGER_UI_VERSION = "5.36.0"
STATIC = Path(__file__).parent / "docs_static"
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "docs.js"})
PREFIX = "/api/docs"

# Our own scripts only. Swagger UI sets style attributes and shows data: icons; "Try it out" calls this origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


async def page(request: web.Request) -> web.Response:
    if request.path != PREFIX:
        raise web.HTTPFound(PREFIX)
    return pages.render("api_docs.html", headers={**_HEADERS, "Cache-Control": "no-cache"}, prefix=PREFIX,
                        version=SWAGGER_UI_VERSION)


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound(text="no such file")
    resp = web.FileResponse(STATIC / name)
    # The URL carries the version, so a browser may keep the file until the next upgrade.
    resp.headers.update({**_HEADERS, "Cache-Control": "public, max-age=86400"})
    return resp


def routes() -> list[web.RouteDef]:
    return [web.get(PREFIX, page), web.get(PREFIX + "/", page), web.get(PREFIX + "/{name}", asset)]


def is_docs_path(path: str) -> bool:
    """The docs page and its files are public (like the OpenAPI document they show)."""
    return path == PREFIX or path.startswith(PREFIX + "/")
