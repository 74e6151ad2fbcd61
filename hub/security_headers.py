"""The headers every response of the hub carries, set in one place (an on_response_prepare hook, so pages, files,
errors and upgrades all pass through it): nosniff everywhere, and on HTML a Content-Security-Policy without inline
script, a framing rule and a Referrer-Policy. A page that needs a wider policy (the console's WebSocket, the web
chat inside the widget) sets its own Content-Security-Policy and keeps the rest."""

from __future__ import annotations

from aiohttp import web

# For any HTML page that states nothing narrower or wider: our own scripts and styles only, no plugins, no framing.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# What a downloaded file (anything a customer or agent uploaded) may do if a browser opens it anyway: nothing.
FILE_CSP = "sandbox; default-src 'none'"
REFERRER_POLICY = "same-origin"


def _frame_options(csp: str) -> str | None:
    """X-Frame-Options for browsers that predate frame-ancestors, saying the same as the policy."""
    for directive in csp.split(";"):
        name, _, value = directive.strip().partition(" ")
        if name == "frame-ancestors":
            value = value.strip()
            return {"'none'": "DENY", "'self'": "SAMEORIGIN"}.get(value)
    return None


async def apply(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type != "text/html":
        return
    csp = headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    frame = _frame_options(csp)
    if frame is not None:
        headers.setdefault("X-Frame-Options", frame)
    headers.setdefault("Referrer-Policy", REFERRER_POLICY)


def install(app: web.Application) -> None:
    app.on_response_prepare.append(apply)
