"""Customer HTML made inert before any browser sees it: an nh3 allowlist, and no remote images unless allowed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import nh3

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "col", "colgroup", "dd", "del", "div", "dl",
    "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol", "p", "pre", "q",
    "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "tt", "u", "ul",
}
# Dropped with everything inside them, not just unwrapped: their text is code or chrome, never message content.
DROP_WITH_CONTENT = {"script", "style", "head", "title", "noscript", "template", "iframe", "object", "embed"}
ATTRIBUTES = {
    "*": {"style", "title", "dir", "lang", "align", "valign", "width", "height"},
    "a": {"href", "name"},
    "img": {"src", "alt"},
    "font": {"color", "face", "size"},
    "td": {"colspan", "rowspan", "bgcolor"},
    "th": {"colspan", "rowspan", "bgcolor"},
    "table": {"border", "cellpadding", "cellspacing", "bgcolor"},
    "ol": {"start", "type"},
}
LINK_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
# Presentation only: nothing that can position an overlay over the console or fetch a URL.
STYLE_PROPERTIES = {
    "background-color", "border", "border-bottom", "border-collapse", "border-color", "border-left", "border-right",
    "border-style", "border-top", "border-width", "color", "font", "font-family", "font-size", "font-style",
    "font-weight", "height", "line-height", "margin", "margin-bottom", "margin-left", "margin-right", "margin-top",
    "padding", "padding-bottom", "padding-left", "padding-right", "padding-top", "text-align", "text-decoration",
    "text-indent", "vertical-align", "white-space", "width",
}
_FETCHES = re.compile(r"url\s*\(|expression\s*\(|@import|image-set\s*\(", re.I)


class Sanitized(str):
    """HTML that came out of `sanitize` (only it makes one): the store keeps it as it is instead of sanitizing it
    again. Any change to it (slicing, joining, a JSON round trip) gives a plain str, which is sanitized again."""

    __slots__ = ()


def sanitized(html: str, *, allow_remote_images: bool = False) -> str:
    """HTML as `sanitize` makes it, without doing it twice: what is already Sanitized is kept as it is."""
    return html if isinstance(html, Sanitized) else sanitize(html, allow_remote_images=allow_remote_images).html


@dataclass
class SafeHtml:
    html: Sanitized
    #: remote images removed (tracking pixels, until someone chooses to load them)
    blocked_images: int


def sanitize(html: str, *, allow_remote_images: bool = False) -> SafeHtml:
    """HTML that cannot run script, fire handlers, follow javascript: links or (by default) load remote images."""
    blocked = 0

    def keep(tag: str, attr: str, value: str) -> str | None:
        nonlocal blocked
        if attr == "style" and _FETCHES.search(value):
            return None
        if attr == "href" and value.strip().lower().startswith("data:"):
            return None  # data: is for inline images only; a data: link can carry a whole page of script
        if tag == "img" and attr == "src":
            v = value.strip().lower()
            if v.startswith("cid:"):
                return value
            if v.startswith("data:image/") and not v.startswith("data:image/svg"):
                return value
            if allow_remote_images and v.startswith("https://"):
                return value
            blocked += 1
            return None
        return value

    clean = nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags=DROP_WITH_CONTENT,
        attributes=ATTRIBUTES,
        attribute_filter=keep,
        url_schemes=LINK_SCHEMES | {"data"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties=STYLE_PROPERTIES,
        strip_comments=True,
    )
    return SafeHtml(Sanitized(clean), blocked)
