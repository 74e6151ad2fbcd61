"""One email (RFC 5322 bytes, whatever is in them) -> what the hub stores: an Inbound, or a reason to flag it.

Never raises on content: broken charsets, headers and structure degrade to the best readable text, and what was
wrong is listed in meta so nothing is silently lost.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, Literal

from hub.html_safety import sanitize
from hub.identities import IdentityError, normalize
from hub.model import AttachmentIn, Identity, Inbound, format_time

Verdict = Literal["message", "auto_reply", "bounce", "unreadable"]

_MSGID = re.compile(r"<([^<>\s]+)>")
_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+")
_NUL = re.compile("\x00")
#: a raw byte the parser could not decode, kept as a lone surrogate (surrogateescape)
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


#: Headers are kept as sent and only those the hub uses are decoded (`_header`, `_addresses`): policy.default
#: parses every header it is asked for into objects, which was most of the time spent reading mail.
_POLICY = policy.compat32


class _Mail(Message):
    """A parsed email (or one of its parts) that answers the questions asked of it many times from what it worked
    out once: its headers by name (a dict instead of a scan of them all), its content type and header parameters.
    The parser adds headers with set_raw, which starts those over; the hub never changes a parsed email."""

    _index: dict[str, str] | None = None
    _ctype: tuple[str, str] | None = None
    _params: dict[tuple[str, str], Any] | None = None

    def set_raw(self, name: str, value: Any) -> None:
        self._index = self._ctype = self._params = None
        super().set_raw(name, value)

    def first(self, name: str) -> str | None:
        """The first NAME header as sent (folded, encoded words and raw 8-bit bytes as they are), or None."""
        index = self._index
        if index is None:
            index = self._index = {}
            for k, v in self.raw_items():
                index.setdefault(k.lower(), v)
        return index.get(name.lower())

    def get(self, name: str, failobj: Any = None) -> Any:  # what get_content_type, get_param... look up
        value = self.first(name)
        return failobj if value is None else self.policy.header_fetch_parse(name, value)

    def get_content_type(self) -> str:  # asked a dozen times per part, by the parser and the hub
        default = self.get_default_type()
        if self._ctype is None or self._ctype[0] != default:
            self._ctype = (default, super().get_content_type())
        return self._ctype[1]

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:  # behind get_param, get_filename...
        value = self.first(header)
        if value is None:
            return failobj
        params = self._params
        if params is None:
            params = self._params = {}
        key = (header.lower(), value)
        if key not in params:
            params[key] = super()._get_params_preserve(failobj, header)  # type: ignore[misc]
        return list(params[key])


#: an RFC 2047 encoded word: =?charset?B|Q?text?=
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


@dataclass
class ParsedEmail:
    """What one email is. `inbound` is None when it must be flagged instead of stored (see `reason`)."""

    message_id: str
    verdict: Verdict
    inbound: Inbound | None
    reason: str | None = None
    #: Message-IDs this email answers: In-Reply-To first, then References newest first
    refs: list[str] = field(default_factory=list)
    #: for a bounce: the Message-IDs of our mail that did not arrive, and the server's words why
    bounced: list[str] = field(default_factory=list)
    bounce_permanent: bool = True
    bounce_reason: str = ""
    #: a hash of what the sender wrote (see `fingerprint`): the same email fetched again has the same one
    fingerprint: str = ""


#: headers the sender wrote; the trace headers each delivering server adds (Received, Delivered-To...) are left out
_FINGERPRINT_HEADERS = frozenset(
    {b"from", b"sender", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to", b"references",
     b"mime-version", b"content-type", b"content-transfer-encoding"}
)


def fingerprint(raw: bytes) -> str:
    """A hash of an email's content: the headers its sender wrote and its body, whitespace-normalized. The same
    email delivered again, re-synced, or delivered to two of our mailboxes has the same fingerprint; another
    email that reuses its Message-ID does not."""
    data = raw.replace(b"\r\n", b"\n")
    head, sep, body = data.partition(b"\n\n")
    if not sep:
        head, body = data, b""
    kept: list[bytes] = []
    for line in re.split(rb"\n(?![ \t])", head):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in _FINGERPRINT_HEADERS:
            kept.append(name.strip().lower() + b":" + b" ".join(value.split()))
    lines = [ln.rstrip() for ln in body.split(b"\n")]
    digest = hashlib.sha256(b"\n".join(sorted(kept)) + b"\n\n" + b"\n".join(lines).strip())
    return digest.hexdigest()[:32]


# -- text -----------------------------------------------------------------------------------------------------


def _clean(s: str) -> str:
    """Text safe for any database: surrogate-escaped raw bytes re-read as UTF-8 (else cp1252), no NULs."""
    if not s.isascii() and _ESCAPED_BYTE.search(s):  # isascii: a flag of the string, no scan
        raw = s.encode("utf-8", "surrogateescape")
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            s = raw.decode("cp1252", "replace")
    return _NUL.sub("", s) if "\x00" in s else s


def _decode(data: bytes, charset: str | None) -> str:
    for cs in (charset, "utf-8"):
        if not cs:
            continue
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError):
            continue
    # Mostly UTF-8 with a few stray bytes reads better as UTF-8; anything else is most likely cp1252.
    text = data.decode("utf-8", "replace")
    if text.count("\ufffd") <= max(1, len(text) // 100):
        return text
    return data.decode("cp1252", "replace")


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        text = _decode(payload, part.get_content_charset())
    else:
        raw = part.get_payload()
        text = raw if isinstance(raw, str) else ""
    return _clean(text).replace("\r\n", "\n").replace("\r", "\n")


class _TextOfHtml(HTMLParser):
    """Readable text of an HTML body (for HTML-only mail and search); blocks become line breaks."""

    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "hr", "pre"}
    SKIP = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    p = _TextOfHtml()
    try:
        p.feed(html)
        p.close()
    except Exception:  # html.parser is lenient, but a pathological document must not lose the mail
        return re.sub(r"<[^>]*>", " ", html)
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in "".join(p.out).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_QUOTE_HEADERS = [
    re.compile(r"^\s*On .{1,200}wrote:\s*$", re.I),  # Gmail, Apple Mail, Thunderbird
    re.compile(r"^\s*Le .{1,200}a écrit\s*:\s*$", re.I),
    re.compile(r"^\s*Am .{1,200}schrieb .{0,200}:\s*$", re.I),
    re.compile(r"^\s*El .{1,200}escribió:\s*$", re.I),
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}\s*$", re.I),  # Outlook
    re.compile(r"^\s*-{2,}\s*Forwarded message\s*-{2,}\s*$", re.I),
    re.compile(r"^_{20,}\s*$"),  # Outlook web: a rule, then From:/Sent:
]
_OUTLOOK_BLOCK = re.compile(r"^\s*From:\s.+\n\s*(Sent|Date):\s", re.I | re.M)
_SIGNATURE = [
    re.compile(r"^-- ?$"),
    re.compile(r"^\s*Sent from my \w+", re.I),
    re.compile(r"^\s*Get Outlook for ", re.I),
]


def trim_reply(text: str) -> str:
    """The new part of a reply: quoted history and signature cut off. The full text is kept elsewhere."""
    lines = text.replace("\r\n", "\n").split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        if any(p.match(line) for p in _QUOTE_HEADERS) or any(p.match(line) for p in _SIGNATURE):
            cut = i
            break
        # "On Mon, 3 Jun 2024 at 10:00, Ann <ann@example.com>\nwrote:": clients wrap the attribution line
        if i + 1 < len(lines) and lines[i + 1].strip().lower() == "wrote:" and line.strip().lower().startswith("on "):
            cut = i
            break
    kept = lines[:cut]
    m = _OUTLOOK_BLOCK.search("\n".join(kept))
    if m:
        kept = "\n".join(kept)[: m.start()].split("\n")
    # A trailing run of "> quoted" lines (bottom-quoting without an attribution line).
    while kept and (kept[-1].startswith(">") or not kept[-1].strip()):
        kept.pop()
    trimmed = "\n".join(kept).strip()
    return trimmed or text.strip()


#: class names and ids mail clients put on the quoted history (or signature) of a reply they compose in HTML
_QUOTE_CLASSES = {
    "gmail_quote", "gmail_quote_container", "gmail_extra", "gmail_signature",  # Gmail
    "moz-cite-prefix", "moz-signature", "moz-forward-container",  # Thunderbird
    "yahoo_quoted",  # Yahoo
}
_QUOTE_IDS = {"divrplyfwdmsg", "appendonsend", "stopspelling", "signature"}  # Outlook (desktop and web)
#: cheap test before parsing: does any marker appear at all?
_QUOTE_HINT = re.compile(
    r"gmail_quote|gmail_extra|gmail_signature|moz-cite-prefix|moz-signature|moz-forward|yahoo_quoted|divRplyFwdMsg|"
    r"appendonsend|stopSpelling|id=\W?Signature|type=\W?cite|border-top", re.I,
)
#: Outlook's header block of the quoted mail: a rule (border-top) above "From:" (localized) and "Sent:"
_OUTLOOK_RULE = re.compile(r"border-top\s*:\s*solid", re.I)
_OUTLOOK_FROM = re.compile(r"^\W*(From|Von|De|Da|Van|Från|Fra|Od)\s*:", re.I)
_TRAILING_SPACE = re.compile(r"(?:\s|&nbsp;|&#160;|<br\s*/?>|<hr\b[^>]*>|<p>\s*</p>)+$", re.I)


class _QuoteStart(HTMLParser):
    """Finds where the quoted history of an HTML reply starts: the offset of the first element a mail client
    marks as quote, attribution or signature."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = html
        self._lines = [0, *(m.end() for m in re.finditer("\n", html))]
        self.at: int | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.at is not None:
            return
        a = {k.lower(): (v or "") for k, v in attrs}
        line, col = self.getpos()
        here = self._lines[line - 1] + col
        quote = (
            bool(_QUOTE_CLASSES & set(a.get("class", "").lower().split()))
            or a.get("id", "").lower() in _QUOTE_IDS
            or (tag == "blockquote" and a.get("type", "").lower() == "cite")  # Apple Mail, Thunderbird
            or (tag == "div" and bool(_OUTLOOK_RULE.search(a.get("style", "")))
                and bool(_OUTLOOK_FROM.match(html_to_text(self.html[here : here + 600]))))
        )
        if quote:
            self.at = here


def trim_html_reply(html: str) -> str | None:
    """The new part of an HTML reply, cut before the quoted history or signature that Gmail, Outlook, Apple Mail,
    Thunderbird or Yahoo marked; None when there is nothing to cut (or nothing would be left). The cut may leave
    tags open: the sanitizer closes them."""
    if not _QUOTE_HINT.search(html):
        return None
    finder = _QuoteStart(html)
    try:
        finder.feed(html)
        finder.close()
    except Exception:  # html.parser is lenient; a pathological document is shown whole
        return None
    if finder.at is None:
        return None
    kept = _TRAILING_SPACE.sub("", html[: finder.at])
    if not html_to_text(kept).strip():
        return None  # only quotes (or a reply written inside them): show it whole
    return kept


# -- headers --------------------------------------------------------------------------------------------------


def _raw_header(msg: Message, name: str) -> str | None:
    """The first NAME header as sent (folded, encoded words and raw 8-bit bytes as they are), or None."""
    if isinstance(msg, _Mail):
        return msg.first(name)
    wanted = name.lower()
    return next((v for k, v in msg.raw_items() if k.lower() == wanted), None)


def _encoded_word(m: re.Match[str]) -> str:
    charset, encoding, text = m.group(1).partition("*")[0], m.group(2).upper(), m.group(3)
    try:
        if encoding == "B":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = quopri.decodestring(text.encode("ascii", "surrogateescape"), header=True)
    except (binascii.Error, ValueError):
        return m.group(0)
    return _decode(data, charset)


def decode_words(value: str) -> str:
    """A header value with its folding undone and its RFC 2047 encoded words decoded, leniently: an unknown charset
    or a broken word reads as well as it can, never raises. Whitespace between two encoded words is dropped."""
    if "\n" in value:
        value = _FOLD.sub("", value)
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0  # after the first word: the end of the last one
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos : m.start()]
        if not (pos and not between.strip()):
            out.append(between)
        out.append(_encoded_word(m))
        pos = m.end()
    out.append(value[pos:])
    return "".join(out)


def _header(msg: Message, name: str) -> str:
    """A header's decoded value. Raw 8-bit headers (no encoded words, as some mailers send) are read as UTF-8,
    else cp1252."""
    raw = _raw_header(msg, name)
    if raw is None:
        return ""
    if not raw.isascii() and _ESCAPED_BYTE.search(raw):
        return re.sub(r"\s*\r?\n\s+", " ", _clean(raw)).strip()
    return _clean(decode_words(raw)).strip()


#: the usual forms of one address, `Name <ann@example.com>` and `ann@example.com`, read without the general parser
#: (they read the same through it): no quotes, comments, groups, lists or routes
_PLAIN = r"[^<>\s,;:\"()\\\[\]@]"
_ONE_NAMED = re.compile(rf"\s*([^<>@,;:\"()\\\[\]]*?)\s*<\s*({_PLAIN}+@{_PLAIN}+)\s*>\s*")
_ONE_BARE = re.compile(rf"\s*({_PLAIN}+@{_PLAIN}+)\s*")


def _address_list(text: str) -> list[tuple[str, str]]:
    """getaddresses([TEXT]), with the usual single-address forms read by a regular expression."""
    m = _ONE_NAMED.fullmatch(text)
    if m and _ADDRESS.fullmatch(m.group(2)):
        return [(" ".join(m.group(1).split()), m.group(2))]
    m = _ONE_BARE.fullmatch(text)
    if m and _ADDRESS.fullmatch(m.group(1)):
        return [("", m.group(1))]
    return getaddresses([text])


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs; tolerant of the many malformed forms found in the wild. The addresses are
    read before the display names are decoded, so an encoded comma in a name does not split it."""
    raw = _raw_header(msg, name)
    if raw is None:
        return []
    text = _clean(raw)
    text = _FOLD.sub("", text) if "\n" in text else text
    out = [(_clean(decode_words(n)).strip(), a) for n, a in _address_list(text) if _ADDRESS.fullmatch(a)]
    if not out:
        decoded = _header(msg, name)
        out = [(n, a) for n, a in getaddresses([decoded]) if _ADDRESS.fullmatch(a)]
        if not out:
            # Unbalanced quotes and brackets defeat the parser; an address-shaped token is still the sender.
            out = [("", m.group(0)) for m in _ADDRESS.finditer(decoded)][:1]
    return out


def message_ids(value: str) -> list[str]:
    """Message-IDs in a header value, without angle brackets; tolerates bare ids some clients write."""
    found = _MSGID.findall(value)
    if not found and value.strip() and "@" in value and " " not in value.strip():
        found = [value.strip().strip("<>")]
    return [_clean(f) for f in found]


def _refs(msg: Message) -> list[str]:
    """In-Reply-To first (the direct parent), then References newest first; a rewritten In-Reply-To still
    threads through References."""
    seen: list[str] = []
    for mid in message_ids(_header(msg, "In-Reply-To")) + list(reversed(message_ids(_header(msg, "References")))):
        if mid not in seen:
            seen.append(mid)
    return seen


def auto_reply_reason(msg: Message) -> str | None:
    """Why this mail was written by a machine (out-of-office, autoresponder, bulk), or None for a person."""
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and auto != "no":
        return f"auto-reply (Auto-Submitted: {auto})"
    for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if _header(msg, h):
            return f"auto-reply ({h})"
    if msg.get_content_type() == "multipart/report" and str(msg.get_param("report-type") or "").lower() == (
        "disposition-notification"
    ):
        return "read receipt (RFC 8098)"
    # Precedence: list/bulk and List-Id mark list posts, written by people: RFC 3834 says not to answer them
    # automatically, not to hide them. They are stored like any email (see `list_id`).
    prec = _header(msg, "Precedence").lower()
    if prec in ("auto_reply", "junk"):
        return f"auto-reply (Precedence: {prec})"
    if _header(msg, "X-Auto-Response-Suppress").lower() in ("all", "oof") and "out of office" in _header(
        msg, "Subject"
    ).lower():
        return "auto-reply (out-of-office)"
    return None


_DSN_PARTS = ("message/delivery-status", "message/global-delivery-status")
_RETURNED_PARTS = ("message/rfc822", "message/global", "message/rfc822-headers", "text/rfc822-headers")
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_HEADER_MESSAGE_ID = re.compile(r"^\s*Message-ID:\s*(.+)$", re.I | re.M)
#: what a bounce without a DSN part says (Exim, Exchange, Gmail's plain-text forms): the first such line is the why
_FAILURE_LINE = re.compile(
    r"^.*(could not be delivered|couldn't be delivered|undeliverable|delivery (has )?failed|permanent(ly)? "
    r"(error|failure)|address rejected|user unknown|does not exist|mailbox (is )?(full|unavailable)).*$", re.I | re.M,
)
#: the remote server's own words, an SMTP reply with an enhanced status code: "550 5.1.1 <x>: User unknown"
_SMTP_REPLY = re.compile(r"\b[45]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b.*$", re.M)


def _bounce(msg: Message, senders: list[str]) -> tuple[list[str], bool, str] | None:
    """(original Message-IDs, permanent, reason) when MSG is a delivery failure notice (RFC 3464 or not).

    Recognized by its structure (a multipart/report, with or without report-type, or any delivery-status part),
    by its envelope (MAILER-DAEMON or postmaster, X-Failed-Recipients), or by an empty Return-Path together with a
    copy of the returned message's headers. A read receipt (report-type=disposition-notification) is not one.
    SENDERS: the addresses of its From and Sender headers."""
    ctype = msg.get_content_type()
    report_type = str(msg.get_param("report-type") or "").lower()
    parts = list(msg.walk())
    has_dsn = any(p.get_content_type() in _DSN_PARTS for p in parts)
    structural = has_dsn or (ctype == "multipart/report" and report_type != "disposition-notification")
    daemon = any(_DAEMON.match(a) for a in senders) or bool(_header(msg, "X-Failed-Recipients"))
    null_sender = _header(msg, "Return-Path").strip() in ("<>", "") and _raw_header(msg, "Return-Path") is not None
    if not structural and not daemon and not null_sender:
        return None
    originals: list[str] = []
    reasons: list[str] = []
    permanent = True
    for part in parts:
        pt = part.get_content_type()
        if pt in _DSN_PARTS:
            # Each per-recipient block is a header block; the payload is a list of header blocks.
            blocks = part.get_payload()
            for block in blocks if isinstance(blocks, list) else []:
                if not isinstance(block, Message):
                    continue
                action = _header(block, "Action").lower()
                status = _header(block, "Status")
                diag = _header(block, "Diagnostic-Code")
                if action == "delayed" or status.startswith("4"):
                    permanent = False
                if action or status or diag:
                    reasons.append(" ".join(x for x in (status, diag.partition(";")[2].strip() or diag) if x))
        elif pt in _RETURNED_PARTS:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                originals += message_ids(_header(inner[0], "Message-ID"))
            else:
                text = _part_text(part)
                m = _HEADER_MESSAGE_ID.search(text)
                if m:
                    originals += message_ids(m.group(1))
    texts = [_part_text(p) for p in parts if p.get_content_type() == "text/plain" and not p.is_multipart()]
    if not originals:
        # Bounces without a DSN part (Exim, some Exchange and Gmail forms) paste the original headers in the text.
        for text in texts:
            m = _HEADER_MESSAGE_ID.search(text)
            if m:
                originals = message_ids(m.group(1))
                break
    if not structural and not daemon and not originals:
        return None  # an empty Return-Path alone is also how auto-replies are sent (RFC 3834)
    for pattern in (_SMTP_REPLY, _FAILURE_LINE):
        for text in texts if not reasons else []:
            m = pattern.search(text)
            if m:
                reasons.append(m.group(0).strip()[:300])
                break
    reason = "; ".join(dict.fromkeys(r for r in reasons if r)) or _header(msg, "Subject") or "delivery failed"
    return originals, permanent, reason


# -- body -----------------------------------------------------------------------------------------------------


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[AttachmentIn] = field(default_factory=list)
    inline: dict[str, str] = field(default_factory=dict)


def _filename(part: Message, n: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        # RFC 2231 is undone by get_filename; many clients send RFC 2047 encoded words instead, which it leaves.
        return _clean(decode_words(name)).replace("/", "_").replace("\\", "_")[:200]
    ext = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "application/pdf": ".pdf"}.get(
        part.get_content_type(), ".bin"
    )
    return f"part-{n}{ext}"


#: defects that mean the parts could not all be read as sent: a boundary that never comes, a part that is not
#: what it says (base64 that is not base64)
_STRUCTURE_DEFECT = re.compile(r"Boundary|Multipart|Base64|MissingHeaderBodySeparator")
_MIME_LINE = re.compile(r"^(--\S*|Content-[\w-]+:.*|MIME-Version:.*)$", re.I)


def _walk(part: Message, body: _Body) -> None:
    ctype = part.get_content_type()
    if ctype.startswith("multipart/") and not part.is_multipart():
        # Its boundary never appears: the parts are one text. Show it without the MIME lines (the raw is kept).
        text = "\n".join(ln for ln in _part_text(part).split("\n") if not _MIME_LINE.match(ln.strip()))
        body.plain.append(text.strip())
        return
    if part.is_multipart() and not ctype.startswith("message/"):
        payload = part.get_payload()
        subparts = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
        if ctype == "multipart/alternative":
            # Alternatives say the same thing: keep the richest plain and HTML ones, walk the rest for files.
            plains = [p for p in subparts if p.get_content_type() == "text/plain"]
            htmls = [p for p in subparts if p.get_content_type() == "text/html"]
            if plains:
                body.plain.append(_part_text(plains[-1]))
            if htmls:
                body.html.append(_part_text(htmls[-1]))
            for p in subparts:
                if p not in plains and p not in htmls:
                    _walk(p, body)
            return
        for p in subparts:
            _walk(p, body)
        return
    try:
        disposition = (part.get_content_disposition() or "").lower()
    except Exception:
        disposition = ""
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not part.get_filename():
        (body.plain if ctype == "text/plain" else body.html).append(_part_text(part))
        return
    n = len(body.attachments) + 1
    if ctype in ("message/rfc822", "message/global"):
        inner = part.get_payload()
        data = inner[0].as_bytes() if isinstance(inner, list) and inner and isinstance(inner[0], Message) else b""
        name = _filename(part, n)
        if name.startswith("part-"):
            name = f"message-{n}.eml"
        body.attachments.append(AttachmentIn(name, "message/rfc822", data))
        return
    decoded = part.get_payload(decode=True)
    payload = part.get_payload()
    if isinstance(decoded, bytes):
        data = decoded
    elif isinstance(payload, list):  # header blocks (a delivery status, a read receipt's disposition): as sent
        data = b"\n".join(p.as_bytes() for p in payload if isinstance(p, Message))
    else:
        data = _clean(str(payload)).encode()
    name = _filename(part, n)
    body.attachments.append(AttachmentIn(name, ctype, data))
    cid = message_ids(_header(part, "Content-ID"))
    if cid:
        body.inline[cid[0]] = name


# -- the whole email ------------------------------------------------------------------------------------------


def parse_email(
    raw: bytes,
    *,
    channel: str = "email",
    allow_remote_images: bool = False,
    own_addresses: frozenset[str] = frozenset(),
    sender: Identity | None = None,
) -> ParsedEmail:
    """Read RAW into what the hub stores. Never raises on malformed content. SENDER, when an operator says who
    sent it (attaching a flagged email to a customer), is taken instead of the From header."""
    fallback_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    content = fingerprint(raw)
    try:
        msg = BytesParser(_Mail, policy=_POLICY).parsebytes(raw)
    except Exception as e:  # the parser is lenient; this is for the truly pathological
        return ParsedEmail(fallback_id, "unreadable", None, f"not parseable as an email: {type(e).__name__}: {e}",
                           fingerprint=content)

    ids = message_ids(_header(msg, "Message-ID"))
    # No Message-ID: a hash of the bytes is stable, so the same mail fetched again still deduplicates.
    message_id = ids[0] if ids else fallback_id
    refs = _refs(msg)

    from_, sender_ = _addresses(msg, "From"), _addresses(msg, "Sender")
    bounce = _bounce(msg, [a for _, a in from_ + sender_]) if sender is None else None
    if bounce is not None:
        originals, permanent, why = bounce
        return ParsedEmail(
            message_id, "bounce", None, f"delivery status notification: {why}"[:500], refs,
            bounced=originals, bounce_permanent=permanent, bounce_reason=why, fingerprint=content,
        )

    senders = from_ or sender_ or _addresses(msg, "Return-Path")
    identity: Identity | None = sender
    name = ""
    for display, addr in senders if sender is None else []:
        try:
            identity = normalize("email", addr)
            name = display
            break
        except IdentityError:
            continue
    if identity is None:
        raw_from = _header(msg, "From")
        return ParsedEmail(message_id, "unreadable", None, f"no usable sender address (From: {raw_from[:200]!r})", refs,
                           fingerprint=content)
    if sender is None and identity.value in own_addresses:
        return ParsedEmail(message_id, "auto_reply", None, f"sent from our own address {identity.value}", refs,
                           fingerprint=content)

    auto = auto_reply_reason(msg)

    body = _Body()
    broken: list[str] = []
    try:
        _walk(msg, body)
    except Exception as e:
        body.plain.append(_clean(raw.decode("utf-8", "replace")))
        broken.append(f"{type(e).__name__}: {e}")

    html_raw = "\n".join(h for h in body.html if h.strip())
    safe = sanitize(html_raw, allow_remote_images=allow_remote_images) if html_raw else None
    # For display, HTML without its quoted history too; the whole of it is kept in meta (full_html).
    html_new = trim_html_reply(html_raw) if html_raw else None
    safe_new = sanitize(html_new, allow_remote_images=allow_remote_images) if html_new is not None else None
    full_text = "\n\n".join(p.strip("\n") for p in body.plain if p.strip())
    if not full_text and html_raw:
        full_text = html_to_text(html_raw)
        # HTML-only: the markers in the HTML say where the quote starts more surely than the text does.
        shown = trim_reply(html_to_text(html_new)) if html_new is not None else trim_reply(full_text)
    else:
        shown = trim_reply(full_text) if full_text else ""
    subject = _header(msg, "Subject")

    occurred_at = None
    try:
        date = parsedate_to_datetime(_header(msg, "Date"))
        if date.tzinfo is not None:
            occurred_at = format_time(date)
    except (TypeError, ValueError, IndexError):
        pass

    defects = []
    for part in msg.walk():
        defects += [type(d).__name__ for d in getattr(part, "defects", [])]
    broken += sorted({d for d in defects if _STRUCTURE_DEFECT.search(d)})
    if broken:
        # Whatever could be read is shown; the whole email is kept beside it, so nothing written is unreachable.
        body.attachments.append(AttachmentIn("original.eml", "message/rfc822", raw))

    meta: dict[str, Any] = {
        "email": {
            "message_id": message_id,
            "subject": subject,
            "from": [f"{n} <{a}>" if n else a for n, a in senders[:1]],
            "to": [a for _, a in _addresses(msg, "To")],
            "cc": [a for _, a in _addresses(msg, "Cc")],
            "reply_to": [a for _, a in _addresses(msg, "Reply-To")],
            "refs": refs,
        }
    }
    email_meta = meta["email"]
    # Who else it went to, besides us and the sender: whom "reply all" copies.
    others = [a for a in dict.fromkeys(email_meta["to"] + email_meta["cc"])
              if a.lower() not in own_addresses and a.lower() != identity.value]
    if others:
        email_meta["others"] = others
    if shown != full_text.strip():
        email_meta["full_text"] = full_text
    if safe is not None and safe_new is not None and safe_new.html != safe.html:
        email_meta["full_html"] = safe.html
    if safe is not None and safe.blocked_images:
        email_meta["blocked_images"] = safe.blocked_images
    if body.inline:
        email_meta["inline"] = body.inline
    if defects:
        email_meta["defects"] = sorted(set(defects))
    if auto:
        email_meta["auto_reply"] = auto
        meta["automatic"] = auto
    if broken:
        email_meta["broken"] = broken
    list_id = _header(msg, "List-Id")
    if list_id:
        email_meta["list_id"] = list_id[:300]
    if recipients := [a for _, a in _addresses(msg, "Delivered-To")]:
        email_meta["delivered_to"] = recipients
    if subject and not shown:
        shown = f"({subject})"

    inbound = Inbound(
        channel=channel,
        identity=identity,
        text=shown,
        external_id=message_id,
        name=name or None,
        html=(safe_new or safe).html if safe is not None else None,
        attachments=body.attachments,
        occurred_at=occurred_at,
        meta=meta,
    )
    if auto:
        return ParsedEmail(message_id, "auto_reply", inbound, auto, refs, fingerprint=content)
    return ParsedEmail(message_id, "message", inbound, None, refs, fingerprint=content)


def reread(raw: Any, channel: str, sender: Identity) -> Inbound | None:
    """The email channel's RawReader: a journaled email (its raw carries the message as eml_base64) read again as
    sent by SENDER; None for any other raw event."""
    if not (isinstance(raw, dict) and isinstance(raw.get("eml_base64"), str)):
        return None
    try:
        eml = base64.b64decode(raw["eml_base64"])
    except (binascii.Error, ValueError):
        return None
    parsed = parse_email(eml, channel=channel, sender=sender)
    assert parsed.inbound is not None  # with a sender given, every email reads as one
    return parsed.inbound
