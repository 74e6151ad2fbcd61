"""The console's static files as a browser gets them: read once per process, gzip-compressed when that saves bytes,
and served under one version that changes whenever any file does (`/console/static/v-<version>/js/app.js`).

One version for the whole set, in the path rather than in a query, is what makes ES modules cache-busted too: app.js
imports `./dom.js`, which the browser resolves under the same versioned folder. So every file can be cached for a
year (`immutable`: a reload asks for nothing but the page), and a release is fetched at once because the page names
the new folder. The page also lists every module as a `modulepreload`, so a cold load fetches them in parallel
instead of one import level at a time. Edits to the files need a restart of the process to be served."""

from __future__ import annotations

import gzip
import hashlib
import html
import mimetypes
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
PREFIX = "/console/static/"
IMMUTABLE = "public, max-age=31536000, immutable"
# Files asked for without the current version (bookmarked, or an older page during a rolling upgrade) are
# revalidated each time, so they can never be stale.
REVALIDATE = "no-cache"
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html",
         ".json": "application/json", ".woff2": "font/woff2"}
# Below this, gzip's header costs more than it saves.
MIN_GZIP = 256


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


@dataclass(frozen=True)
class Assets:
    version: str
    files: dict[str, Asset]
    page: Asset

    def find(self, path: str) -> tuple[Asset | None, bool]:
        """The file at PATH (relative to /console/static/, maybe under v-<version>/) and whether it was asked for
        under the current version."""
        first, sep, rest = path.partition("/")
        if sep and first.startswith("v-"):
            return self.files.get(rest), first == f"v-{self.version}"
        return self.files.get(path), False


def _content_type(name: str) -> str:
    suffix = Path(name).suffix
    return TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def _asset(body: bytes, content_type: str) -> Asset:
    digest = hashlib.sha256(body).hexdigest()[:16]
    packed = gzip.compress(body, compresslevel=9, mtime=0) if len(body) >= MIN_GZIP else None
    if packed is not None and len(packed) >= len(body):
        packed = None
    return Asset(body, packed, content_type, f'"{digest}"')


def _page(page: str, version: str, modules: list[str]) -> str:
    page = page.replace(PREFIX, f"{PREFIX}v-{version}/")
    hrefs = (f"{PREFIX}v-{version}/{m}" for m in modules)
    preload = "".join(f'  <link rel="modulepreload" href="{html.escape(href)}">\n' for href in hrefs)
    return page.replace("</head>", preload + "</head>", 1)


def build(root: Path = STATIC) -> Assets:
    raw = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    whole = hashlib.sha256()
    for name, body in raw.items():
        whole.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    version = whole.hexdigest()[:12]
    files = {name: _asset(body, _content_type(name)) for name, body in raw.items() if name != "index.html"}
    modules = [name for name in files if name.endswith(".js")]
    page = _asset(_page(raw["index.html"].decode(), version, modules).encode(), "text/html")
    return Assets(version, files, page)


@cache
def current() -> Assets:
    return build()


def accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def respond(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    charset = "utf-8" if asset.content_type.startswith("text/") else None
    headers = {"Cache-Control": cache_control, "ETag": asset.etag, "Vary": "Accept-Encoding"}
    if asset.etag in (tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")):
        return web.Response(status=304, headers=headers)
    if asset.gzipped is not None and accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=asset.gzipped, content_type=asset.content_type, charset=charset,
                            headers=headers)
    return web.Response(body=asset.body, content_type=asset.content_type, charset=charset, headers=headers)


async def static(request: web.Request) -> web.Response:
    asset, versioned = current().find(request.match_info["path"])
    if asset is None:
        raise web.HTTPNotFound(text="no such console file")
    return respond(request, asset, IMMUTABLE if versioned else REVALIDATE)
