"""How the hub hands out a file someone uploaded (a customer's attachment, an agent's outgoing file): always as a
download, never as a page of ours. Content-Disposition names it per RFC 6266 / RFC 5987; nosniff and a sandbox
policy keep a browser that opens it anyway from running anything on the hub's origin."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from aiohttp import web

from hub.security_headers import FILE_CSP

_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,127}")
_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")


def media_type(stored: str) -> str:
    """A clean Content-Type from a stored one ("text/plain; charset=utf-8" keeps its charset; anything that is not a
    plain type/subtype becomes application/octet-stream)."""
    main, _, rest = stored.partition(";")
    kind, _, sub = main.strip().lower().partition("/")
    if not (_TOKEN.fullmatch(kind) and _TOKEN.fullmatch(sub)):
        return "application/octet-stream"
    params = dict(p.strip().lower().partition("=")[::2] for p in rest.split(";") if "=" in p)
    charset = params.get("charset", "").strip('"')
    return f"{kind}/{sub}" + (f"; charset={charset}" if _TOKEN.fullmatch(charset) else "")


def content_disposition(filename: str, fallback: str = "attachment") -> str:
    """`attachment; filename="ascii"; filename*=UTF-8''percent-encoded` (RFC 6266 section 4.3 with RFC 5987)."""
    name = "".join(ch for ch in filename if unicodedata.category(ch)[0] != "C")
    name = name.replace("/", "_").replace("\\", "_")[:200].strip(" .") or fallback
    ascii_name = _ASCII_SAFE.sub("_", unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode())
    ascii_name = ascii_name.strip(" ")
    if not ascii_name.strip("._"):
        ascii_name = fallback
    elif ascii_name.startswith("."):  # nothing of the name was ASCII but its extension: keep the extension
        ascii_name = fallback + ascii_name
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def file_response(data: bytes, filename: str, content_type: str, cache: str = "private, no-store") -> web.Response:
    resp = web.Response(body=data)
    resp.headers.update({
        "Content-Type": media_type(content_type),
        "Content-Disposition": content_disposition(filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": FILE_CSP,
        "Cache-Control": cache,
    })
    return resp
