"""The one way the hub renders an HTML page on the server: Jinja2 templates from hub/templates with autoescape on,
so every value a page shows is text, never markup. Static pages (the console shell, /chat) hold no data and are
served as files; the headers every HTML response carries come from hub.security_headers."""

from __future__ import annotations

import functools
from typing import Any

import jinja2
from aiohttp import web


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hub", "templates"),
        # Every template, whatever its name: a value is escaped unless a template says |safe (none does).
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_text(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def render(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> web.Response:
    """An HTML response from TEMPLATE with CONTEXT escaped."""
    return web.Response(text=render_text(template, **context), status=status, content_type="text/html",
                        charset="utf-8", headers=headers)
