"""Every email in the corpus of real-world oddities ends stored or flagged, read correctly, with inert HTML."""
# ruff: noqa: RUF001  (the corpus is about non-ASCII text)

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from hub.channels.email.parse import fingerprint, parse_email, trim_html_reply, trim_reply
from hub.html_safety import sanitize
from tests.channels.email.dovecot import email_world

CORPUS = Path(__file__).parent / "emails"
OWN = frozenset({"support@hub.test"})

# file -> (verdict, sender, a phrase the displayed text must contain, a phrase the subject must contain)
EXPECTED: dict[str, tuple[str, str | None, str, str]] = {
    "latin1_quoted_printable.eml": ("message", "jose@example.es", "¿dónde está mi factura?", "Factura nº 123"),
    "windows1252_8bit.eml": ("message", "zoe@example.ie", "€50 – that’s “too much”", "Order “urgent”"),
    "shift_jis_base64.eml": ("message", "yamada@example.jp", "注文番号は 4821 です", "注文について"),
    "koi8r.eml": ("message", "ivan@example.ru", "Где мой заказ?", "Вопрос о доставке"),
    "utf8_encoded_words_alternative.eml": ("message", "maria@example.com", "café crème ☕", "Café ☕ order 😀"),
    "nested_multipart_inline_image.eml": ("message", "lee@example.org", "lid arrived cracked", "Broken item"),
    "broken_headers.eml": ("message", "broken@example.com", "Still readable", "raw"),
    "no_message_id.eml": ("message", "nomid@example.com", "did not add a Message-ID", "no message id"),
    "html_only.eml": ("message", "reader@example.com", "my account is locked", "HTML only"),
    "xss_payloads.eml": ("message", "mallory@evil.example", "hover me", "totally normal"),
    "gmail_reply_quoted.eml": ("message", "ann@example.com", "Thanks, that works for me!", "Re: Your order"),
    "outlook_reply_quoted.eml": ("message", "bob@corp.example", "invoice to accounts@", "RE: Your order"),
    "large_attachment.eml": ("message", "big@example.com", "Logs attached.", "log files"),
    "gmail_reply_html.eml": ("message", "ann@example.com", "The new date is fine", "Re: Your order #2077"),
    "outlook_desktop_reply_html.eml": ("message", "bob@corp.example", "two more years – same terms", "RE: Contract"),
    "outlook_web_reply_html.eml": ("message", "carla@shop.example", "sending it back today", "RE: Return label"),
    "apple_mail_reply_html.eml": ("message", "dana@mail.example", "Received it, thanks a lot.", "Re: Your refund"),
    "thunderbird_reply_html.eml": ("message", "emil@example.org", "Danke schön!", "Re: Password reset"),
    "truncated_multipart.eml": ("message", "cut@example.com", "truncated in transit", "cut off"),
    "dsn_bounce.eml": ("bounce", None, "", ""),
    "dsn_delayed.eml": ("bounce", None, "", ""),
    "auto_reply_ooo.eml": ("auto_reply", None, "", ""),
    "auto_reply_precedence.eml": ("auto_reply", None, "", ""),
    # List posts and bulk mail are written by people: stored (RFC 3834 only says not to answer them automatically).
    "bulk_newsletter.eml": ("message", "news@shop.example", "Deals deals deals.", "This week's deals"),
    "list_post.eml": ("message", "priya@lists.example.org", "drops the last row", "[users] Export to CSV"),
    "boundary_mismatch.eml": ("message", "olga@example.com", "charges the shipping twice", "invoice question"),
    "read_receipt.eml": ("auto_reply", None, "", ""),
    "bounce_report_no_type.eml": ("bounce", None, "", ""),
    "exim_bounce.eml": ("bounce", None, "", ""),
    "sendmail_bounce.eml": ("bounce", None, "", ""),
    "exchange_ndr.eml": ("bounce", None, "", ""),
    "gmail_bounce.eml": ("bounce", None, "", ""),
    "no_sender.eml": ("unreadable", None, "", ""),
}


def test_corpus_is_fully_described() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_email_reads_correctly(name: str) -> None:
    verdict, sender, phrase, subject = EXPECTED[name]
    parsed = parse_email((CORPUS / name).read_bytes(), own_addresses=OWN)
    assert parsed.verdict == verdict, parsed.reason
    if verdict != "message":
        assert parsed.reason
        return
    inbound = parsed.inbound
    assert inbound is not None
    assert inbound.identity.value == sender
    assert phrase in inbound.text
    assert subject in inbound.meta["email"]["subject"]
    assert "\x00" not in inbound.text and not re.search("[\udc80-\udcff]", inbound.text)
    json.dumps(inbound.to_json())  # journal-able


def test_multipart_keeps_plain_html_attachments_and_inline_images() -> None:
    parsed = parse_email((CORPUS / "nested_multipart_inline_image.eml").read_bytes())
    inbound = parsed.inbound
    assert inbound is not None and inbound.html is not None
    assert inbound.text == "The lid arrived cracked, see the photo."  # the forwarded email is a file, not text
    assert 'src="cid:photo1@example.org"' in inbound.html
    files = {a.filename: a for a in inbound.attachments}
    assert set(files) == {"lid.png", "receipt.pdf", "message-3.eml"}
    assert files["lid.png"].data is not None and files["lid.png"].data.startswith(b"\x89PNG")
    assert files["receipt.pdf"].data == b"%PDF-1.4\n% fake receipt\n%%EOF\n"
    assert inbound.meta["email"]["inline"] == {"photo1@example.org": "lid.png"}


def test_html_only_mail_gets_text_and_blocks_tracking_pixel() -> None:
    inbound = parse_email((CORPUS / "html_only.eml").read_bytes()).inbound
    assert inbound is not None and inbound.html is not None
    assert "tracker.example.com" not in inbound.html
    assert inbound.meta["email"]["blocked_images"] == 1
    assert "ignored title" not in inbound.text and "color:red" not in inbound.text
    assert "Account" in inbound.text and "4411" in inbound.text


def test_quoted_history_and_signature_trimmed_full_text_kept() -> None:
    inbound = parse_email((CORPUS / "gmail_reply_quoted.eml").read_bytes()).inbound
    assert inbound is not None
    assert inbound.text == "Thanks, that works for me!"
    assert "Your parcel ships tomorrow." in inbound.meta["email"]["full_text"]
    outlook = parse_email((CORPUS / "outlook_reply_quoted.eml").read_bytes()).inbound
    assert outlook is not None and outlook.text == "Please send the invoice to accounts@corp.example too."
    assert "Sent: Thursday" in outlook.meta["email"]["full_text"]


# file -> (the new part, the quoted history: shown only in the full original, meta.email.full_html)
HTML_REPLIES = {
    "gmail_reply_html.eml": ("The new date is <b>fine</b>, thank you!", "delayed to Tuesday"),
    "outlook_desktop_reply_html.eml": ("two more years", "Shall we renew?"),
    "outlook_web_reply_html.eml": ("sending it back today", "Here is your return label."),
    "apple_mail_reply_html.eml": ("Received it, thanks a lot.", "Your refund was sent today."),
    "thunderbird_reply_html.eml": ("The reset link worked", "new password reset link"),
}


@pytest.mark.parametrize("name", sorted(HTML_REPLIES))
def test_html_reply_shows_the_new_part_and_keeps_the_full_original(name: str) -> None:
    new, quoted = HTML_REPLIES[name]
    inbound = parse_email((CORPUS / name).read_bytes()).inbound
    assert inbound is not None and inbound.html is not None
    email = inbound.meta["email"]
    assert new in inbound.html and quoted not in inbound.html
    assert "wrote:" not in inbound.html and "From:" not in inbound.html and "schrieb" not in inbound.html
    assert new in email["full_html"] and quoted in email["full_html"]
    assert quoted not in inbound.text and quoted in email["full_text"]
    assert email["full_html"] == sanitize(email["full_html"]).html, "the full original is sanitized too"


def test_html_signatures_are_trimmed_like_plain_ones() -> None:
    tb = parse_email((CORPUS / "thunderbird_reply_html.eml").read_bytes()).inbound
    assert tb is not None and tb.html is not None
    assert "Emil Berg" not in tb.html and tb.text == "The reset link worked, I'm back in. Danke schön!"
    owa = parse_email((CORPUS / "outlook_web_reply_html.eml").read_bytes()).inbound
    assert owa is not None and owa.html is not None and "Shop Example" not in owa.html


@pytest.mark.parametrize(
    "html",
    [
        "<p>No quote here at all.</p>",
        '<blockquote type="cite">Only the quote, nothing new.</blockquote>',
        '<div class="gmail_quote">On Mon wrote:<blockquote>old</blockquote></div>',
        '<div style="border-top:solid #E1E1E1 1pt"><p>A styled box that is not a quote header</p></div>',
    ],
)
def test_html_without_a_new_part_before_a_quote_is_shown_whole(html: str) -> None:
    assert trim_html_reply(html) is None


def test_html_trim_cuts_at_the_first_marker_and_leaves_balanced_safe_html() -> None:
    html = ('<div><p>Answer <i>here</i></p><div class="gmail_signature">Ann</div>'
            '<div class="gmail_quote">On Mon, Ann wrote:<blockquote class="gmail_quote">old</blockquote></div></div>')
    kept = trim_html_reply(html)
    assert kept == "<div><p>Answer <i>here</i></p>"
    assert sanitize(kept).html == "<div><p>Answer <i>here</i></p></div>"


def test_plain_mail_has_no_full_html() -> None:
    inbound = parse_email((CORPUS / "gmail_reply_quoted.eml").read_bytes()).inbound
    assert inbound is not None and "full_html" not in inbound.meta["email"]
    only = parse_email((CORPUS / "html_only.eml").read_bytes()).inbound
    assert only is not None and "full_html" not in only.meta["email"], "nothing trimmed: nothing extra kept"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Yes please.\n\nOn Mon, 3 Jun 2024 at 10:00, Ann <ann@example.com>\nwrote:\n> old", "Yes please."),
        ("Merci !\n\nLe lun. 3 juin 2024 à 10:00, Ann <a@b.fr> a écrit :\n> old", "Merci !"),
        ("Danke\n\nAm 03.06.2024 um 10:00 schrieb Ann <a@b.de>:\n> alt", "Danke"),
        ("ok\n-----Original Message-----\nFrom: x", "ok"),
        ("Sure\n\nSent from my iPhone", "Sure"),
        ("> only a quote", "> only a quote"),  # nothing new: keep everything rather than show nothing
        ("line one\n> inline quote\nmy answer", "line one\n> inline quote\nmy answer"),
    ],
)
def test_trim_reply(text: str, shown: str) -> None:
    assert trim_reply(text) == shown


def test_bounce_names_the_original_message_and_the_reason() -> None:
    parsed = parse_email((CORPUS / "dsn_bounce.eml").read_bytes())
    assert parsed.bounced == ["hub.42.deadbeef@hub.test"]
    assert parsed.bounce_permanent
    assert "5.1.1" in parsed.bounce_reason and "User unknown" in parsed.bounce_reason
    delayed = parse_email((CORPUS / "dsn_delayed.eml").read_bytes())
    assert delayed.bounced == ["hub.43.cafebabe@hub.test"] and not delayed.bounce_permanent


def test_mail_from_our_own_address_is_never_taken_as_a_customer() -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "support@hub.test", "x@y.z", "loop", "<l@hub.test>"
    msg.set_content("a copy of our own reply")
    parsed = parse_email(msg.as_bytes(), own_addresses=OWN)
    assert parsed.verdict == "auto_reply" and "own address" in (parsed.reason or "")


XSS_MARKERS = ["<script", "onerror", "onload", "onclick", "onmouseover", "javascript:", "<iframe", "<object",
               "<embed", "<svg", "<form", "<input", "<meta", "<base", "<link", "expression(", "url(", "evil.example",
               "data:text"]


def test_xss_payloads_come_out_inert() -> None:
    inbound = parse_email((CORPUS / "xss_payloads.eml").read_bytes()).inbound
    assert inbound is not None and inbound.html is not None
    lowered = inbound.html.lower()
    for marker in XSS_MARKERS:
        assert marker not in lowered, f"{marker!r} survived sanitizing: {inbound.html}"
    assert "hover me" in inbound.html  # the harmless text is still there


@pytest.mark.parametrize(
    "payload",
    [
        '<a href="jav&#x61;script:alert(1)">x</a>',
        '<a href="&#106;avascript:alert(1)">x</a>',
        '<img src="x" onerror="alert(1)">',
        "<svg/onload=alert(1)>",
        '<div style="background:url(https://t.example/p.gif)">x</div>',
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
        '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
        "<scr<script>ipt>alert(1)</script>",
        '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    ],
)
def test_sanitizer_allowlist(payload: str) -> None:
    out = sanitize(payload).html.lower()
    for marker in ("javascript", "onerror", "onload", "<script", "url(", "data:text", "svg"):
        assert marker not in out, out


def test_remote_images_only_when_allowed() -> None:
    html = '<img src="https://cdn.example.com/logo.png" alt="logo">'
    assert "cdn.example.com" not in sanitize(html).html
    assert 'src="https://cdn.example.com/logo.png"' in sanitize(html, allow_remote_images=True).html


async def test_every_corpus_email_ends_stored_or_flagged(db_url: str) -> None:
    """Through the channel and the real ingest, on SQLite and PostgreSQL: nothing is lost, nothing crashes."""
    async with email_world(db_url) as w:
        outcomes = {}
        for path in sorted(CORPUS.glob("*.eml")):
            outcomes[path.name] = await w.channel.receive(path.read_bytes(), {"file": path.name})
        # A second pass is deduplicated, whatever the email was.
        again = {p.name: await w.channel.receive(p.read_bytes()) for p in sorted(CORPUS.glob("*.eml"))}
        journal = await w.journal()
        messages = await w.messages()

    # Messages and auto-replies are on a timeline; bounces of nothing we sent and sender-less mail are flagged.
    kept = ("message", "auto_reply")
    for name, (verdict, _sender, _phrase, _subject) in EXPECTED.items():
        want = "stored" if verdict in kept else "flagged"
        assert outcomes[name] == want, name
        assert again[name] in ("duplicate", "flagged"), name
    assert len(journal) == len(EXPECTED), "one journal row per email, even after a second delivery"
    flagged = [j for j in journal if j["status"] == "rejected"]
    assert len(flagged) == sum(1 for v in EXPECTED.values() if v[0] not in kept)
    assert all(j["error"] and j["reason"] in ("no_sender", "unmatched_bounce") for j in flagged)
    # A flagged email keeps its full original, so it can be read and replayed later.
    for j in flagged:
        assert json.loads(j["payload"])["raw"]["eml_base64"]
    assert len(messages) == sum(1 for v in EXPECTED.values() if v[0] in kept)
    assert sum(1 for m in messages if m.meta.get("automatic")) == sum(1 for v in EXPECTED.values() if v[0] != "message"
                                                                      and v[0] in kept)
    big = next(m for m in messages if m.external_id == "large.1@example.com")
    assert big.attachments[0].size == 300_000 and big.attachments[0].filename == "résumé logs.bin"
    xss = next(m for m in messages if m.external_id == "xss.1@evil.example")
    assert xss.html is not None and "onerror" not in xss.html and "javascript:" not in xss.html.lower()


async def test_attachment_over_the_size_limit_is_kept_as_a_failed_entry(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "huge@example.com", "s@hub.test", "x", "<huge@x>"
    msg.set_content("see attached")
    msg.add_attachment(b"\x00" * 3_000_000, maintype="application", subtype="octet-stream", filename="big.bin")
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    async with email_world(url) as w:
        w.ingest.settings.ingest.max_attachment_bytes = 1_000_000
        assert await w.channel.receive(msg.as_bytes()) == "stored"
        (stored,) = await w.messages()
    (att,) = stored.attachments
    assert att.status == "failed" and "over the 1000000-byte limit" in (att.error or "")
    assert stored.text == "see attached"


# -- bounces in the formats real servers send (written from their documented forms) ----------------------------

BOUNCES = {
    "dsn_bounce.eml": ("hub.42.deadbeef@hub.test", "User unknown"),  # Postfix
    "bounce_report_no_type.eml": ("hub.77.aa11bb22@hub.test", "does not exist"),  # multipart/report, no report-type
    "exim_bounce.eml": ("hub.78.cc33dd44@hub.test", "Recipient address rejected"),  # plain text, headers pasted
    "sendmail_bounce.eml": ("hub.79.ee55ff66@hub.test", "Mailbox disabled"),
    "exchange_ndr.eml": ("hub.80.aabbccdd@hub.test", "RecipientNotFound"),
    "gmail_bounce.eml": ("hub.81.12345678@hub.test", "does not exist"),
}


@pytest.mark.parametrize("name", sorted(BOUNCES))
def test_bounce_formats_name_our_message_and_the_servers_reason(name: str) -> None:
    original, why = BOUNCES[name]
    parsed = parse_email((CORPUS / name).read_bytes(), own_addresses=OWN)
    assert parsed.verdict == "bounce", parsed.reason
    assert parsed.bounced == [original]
    assert parsed.bounce_permanent
    assert why in parsed.bounce_reason


def test_a_read_receipt_is_not_a_bounce_and_an_auto_reply_with_an_empty_return_path_is_not_either() -> None:
    receipt = parse_email((CORPUS / "read_receipt.eml").read_bytes())
    assert receipt.verdict == "auto_reply" and receipt.inbound is not None
    # Its disposition part is kept as sent (header blocks), not as the repr of the parser's objects.
    (disposition,) = [a for a in receipt.inbound.attachments if a.content_type == "message/disposition-notification"]
    assert disposition.data is not None
    assert b"Disposition: manual-action/MDN-sent-manually; displayed" in disposition.data
    msg = EmailMessage()
    msg["Return-Path"], msg["From"], msg["To"] = "<>", "ann@example.com", "support@hub.test"
    msg["Subject"], msg["Message-ID"], msg["Auto-Submitted"] = "Out of office", "<ooo.9@example.com>", "auto-replied"
    msg.set_content("I am away until Monday.")
    parsed = parse_email(msg.as_bytes())
    assert parsed.verdict == "auto_reply" and parsed.inbound is not None


def test_auto_replies_are_kept_as_messages_marked_automatic() -> None:
    for name in ("auto_reply_ooo.eml", "auto_reply_precedence.eml"):
        parsed = parse_email((CORPUS / name).read_bytes())
        assert parsed.verdict == "auto_reply" and parsed.inbound is not None, name
        assert parsed.inbound.meta["automatic"] and parsed.inbound.text, name


def test_a_list_post_is_a_message_from_its_author_with_the_list_named() -> None:
    parsed = parse_email((CORPUS / "list_post.eml").read_bytes())
    assert parsed.verdict == "message" and parsed.inbound is not None
    assert "automatic" not in parsed.inbound.meta
    assert parsed.inbound.meta["email"]["list_id"] == "Product users <users.lists.example.org>"
    assert parsed.inbound.meta["email"]["cc"] == ["support@hub.test"]


@pytest.mark.parametrize("name", ["boundary_mismatch.eml", "truncated_multipart.eml"])
def test_a_broken_structure_keeps_the_readable_text_and_the_whole_raw_email(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    parsed = parse_email(raw)
    inbound = parsed.inbound
    assert inbound is not None
    assert inbound.meta["email"]["broken"]
    (original,) = [a for a in inbound.attachments if a.filename == "original.eml"]
    assert original.data == raw and original.content_type == "message/rfc822"
    assert "--" not in inbound.text and "Content-Type" not in inbound.text


def test_fingerprint_ignores_trace_headers_and_tells_reused_message_ids_apart() -> None:
    def mail(body: str, *trace: str) -> bytes:
        msg = EmailMessage()
        for t in trace:
            msg["Received"] = t
        msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "a@b.example", "support@hub.test", "s", "<fixed@x>"
        msg.set_content(body)
        return msg.as_bytes()

    first = fingerprint(mail("hello"))
    assert fingerprint(mail("hello", "from mx1 by mx2; Thu, 13 Jun 2024 10:00:00 +0000")) == first
    assert fingerprint(mail("hello").replace(b"\n", b"\r\n")) == first
    assert fingerprint(mail("hello, other text")) != first
