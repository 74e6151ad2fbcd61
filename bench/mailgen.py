"""A mailbox of varied, realistic emails for the import benchmark: several hundred senders, threads with quoted
history, HTML alternatives, attachments, other charsets and a few auto-replies; deterministic for a given seed."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

WORDS = (
    "order invoice delivery refund account password login parcel tracking number missing damaged broken charge "
    "subscription renew cancel upgrade plan seats team billing address shipping week monday tomorrow please thanks "
    "help question issue problem error screen page app phone laptop update version export report data customer "
    "support agent reply urgent again still waiting since yesterday received email sent attached photo receipt"
).split()
FIRST = ("ann bob chloe dan eva femi gus hana ivan jo kai lea mo nia omar pia quinn raj sara tom uma vic wen "
         "xia yann zoe").split()
DOMAINS = ("example.com", "mail.example", "corp.example", "shop.example", "example.org", "post.example")


def _sentence(rng: random.Random, words: int) -> str:
    s = " ".join(rng.choice(WORDS) for _ in range(words))
    return s[0].upper() + s[1:] + "."


def _paragraphs(rng: random.Random, n: int) -> str:
    return "\n\n".join(" ".join(_sentence(rng, rng.randint(6, 16)) for _ in range(rng.randint(2, 5)))
                       for _ in range(n))


def _html(text: str) -> str:
    paras = "".join(f"<p style=\"margin:0 0 1em\">{p}</p>" for p in text.split("\n\n"))
    return (f"<html><head><style>p{{font-family:Arial}}</style></head><body><div dir=\"ltr\">{paras}"
            "<img src=\"https://tracker.example/p.gif\" width=\"1\" height=\"1\"></div></body></html>")


def senders(rng: random.Random, count: int) -> list[tuple[str, str]]:
    out = []
    for n in range(count):
        first = rng.choice(FIRST)
        out.append((f"{first.title()} {chr(65 + n % 26)}.", f"{first}.{n}@{rng.choice(DOMAINS)}"))
    return out


def generate(count: int, sender_count: int, seed: int = 4) -> list[bytes]:
    """COUNT emails as RFC 5322 bytes, oldest first. Shares (roughly): 45% plain text, 30% plain + HTML, 15%
    replies quoting an earlier email of their thread, 6% with a PDF or image attached, 3% Latin-1 quoted-printable,
    1% out-of-office auto-replies (stored, marked automatic)."""
    rng = random.Random(seed)
    people = senders(rng, sender_count)
    start = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    sent: list[tuple[str, str, str, list[str], str]] = []  # (message id, sender, subject, references, text)
    out: list[bytes] = []
    for n in range(count):
        msg = EmailMessage()
        name, addr = rng.choice(people)
        mid = f"bench.{seed}.{n}.{rng.getrandbits(32):08x}@{addr.split('@')[1]}"
        roll = rng.random()
        subject = f"{_sentence(rng, rng.randint(2, 6))[:-1]} #{rng.randint(1000, 99999)}"
        text = _paragraphs(rng, rng.randint(1, 4))
        refs: list[str] = []
        if roll < 0.15 and sent:
            # A reply in a thread: mostly the same person again, sometimes a colleague from a new address.
            parent_id, parent_sender, parent_subject, parent_refs, parent_text = rng.choice(sent[-400:])
            if rng.random() < 0.8:
                name, addr = next((p for p in people if p[1] == parent_sender), (name, addr))
            subject = f"Re: {parent_subject.removeprefix('Re: ')}"
            refs = [*parent_refs[-10:], parent_id]
            msg["In-Reply-To"] = f"<{parent_id}>"
            msg["References"] = " ".join(f"<{r}>" for r in refs)
            quoted = "\n".join(f"> {line}" for line in parent_text.splitlines())
            text = f"{text}\n\nOn Mon, 1 Jan 2024 at 09:00, {parent_sender} wrote:\n{quoted}"
        msg["From"] = f"{name} <{addr}>"
        msg["To"] = "support@bench.test"
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{mid}>"
        msg["Date"] = format_datetime(start + timedelta(minutes=7 * n + rng.randint(0, 6)))
        if 0.99 <= roll:
            msg["Auto-Submitted"] = "auto-replied"
            msg.replace_header("Subject", f"Out of office: {subject}")
            msg.set_content("I am out of the office until Monday and will answer when I am back.")
        elif 0.96 <= roll < 0.99:
            latin = text + "\n\nMerci, à bientôt. Grüße aus Köln."
            msg.set_content(latin, charset="iso-8859-1", cte="quoted-printable")
        elif 0.15 <= roll < 0.45:
            msg.set_content(text)
            msg.add_alternative(_html(text), subtype="html")
        else:
            msg.set_content(text)
        if 0.90 <= roll < 0.96:
            if rng.random() < 0.5:
                data = b"%PDF-1.4\n" + rng.randbytes(rng.randint(20_000, 150_000))
                msg.add_attachment(data, maintype="application", subtype="pdf", filename=f"invoice-{n}.pdf")
            else:
                data = b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(10_000, 80_000))
                msg.add_attachment(data, maintype="image", subtype="png", filename=f"photo-{n}.png")
        for i, part in enumerate(msg.walk()):
            if part.is_multipart():
                part.set_boundary(f"=_bench_{seed}_{n}_{i}")  # random by default; fixed, the mailbox is repeatable
        sent.append((mid, addr, subject.removeprefix("Re: "), refs, text.split("\n\nOn Mon")[0]))
        out.append(msg.as_bytes())
    return out


def write_maildir(maildir: Path, emails: list[bytes], uid: int | None = None, gid: int | None = None) -> int:
    """Drop EMAILS into MAILDIR/new as a delivery agent would (one file each, tmp then rename); returns bytes
    written. UID/GID: the owner the mail server expects (when run as root)."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    total = 0
    stamp = int(time.time())
    for n, raw in enumerate(emails):
        name = f"{stamp}.M{n:06d}P{os.getpid()}.bench"
        tmp = maildir / "tmp" / name
        tmp.write_bytes(raw)
        os.rename(tmp, maildir / "new" / name)
        total += len(raw)
    if uid is not None and gid is not None:
        for root, dirs, files in os.walk(maildir.parent):
            for p in (*dirs, *files):
                os.chown(os.path.join(root, p), uid, gid)
            os.chown(root, uid, gid)
    return total
