"""Identity normalization: one canonical `(kind, value)` per way of reaching a person. No fuzzy matching, ever."""

from __future__ import annotations

import functools
import re

import phonenumbers

from hub.model import IDENTITY_KINDS, Identity

_EMAIL = re.compile(r"^[^@\s<>\x00-\x1f\x7f]+@[^@\s<>\x00-\x1f\x7f]+\.[^@\s<>\x00-\x1f\x7f]+$")
# The longest an identity may be: an email address's limit (RFC 5321); phone numbers and chat ids are far shorter.
MAX_IDENTITY_CHARS = 320
_VISITOR = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class IdentityError(ValueError):
    """An identity that cannot be normalized; the message says what is wrong and what is expected."""


@functools.lru_cache(maxsize=65_536)  # parsing costs ~0.1 ms and the same numbers write in again and again
def normalize_phone(value: str, region: str) -> str:
    raw = value.strip()
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as e:
        raise IdentityError(f"phone {raw!r} is not a phone number ({e})") from None
    if not phonenumbers.is_possible_number(number):
        raise IdentityError(f"phone {raw!r} is not a possible phone number for region {region}")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize(kind: str, value: str, region: str = "US") -> Identity:
    kind = kind.strip().lower()
    if kind not in IDENTITY_KINDS:
        raise IdentityError(f"unknown identity kind {kind!r}: use one of {', '.join(IDENTITY_KINDS)}")
    value = value.strip()
    if not value:
        raise IdentityError(f"{kind} identity has an empty value")
    if len(value) > MAX_IDENTITY_CHARS:
        raise IdentityError(f"{kind} identity is {len(value)} characters long; at most {MAX_IDENTITY_CHARS}")
    if "\x00" in value:
        raise IdentityError(f"{kind} identity contains a NUL character")
    if not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value):  # ASCII holds none: one C call
        raise IdentityError(f"{kind} identity contains a lone surrogate (not valid Unicode text)")
    if kind == "phone":
        return Identity("phone", normalize_phone(value, region))
    if kind == "email":
        addr = value.lower()
        if not _EMAIL.match(addr):
            raise IdentityError(f"email {value!r} is not an email address")
        return Identity("email", addr)
    if kind == "telegram":
        digits = value.removeprefix("-")
        # ASCII only ('²' passes isdigit() but not int()), and within 64 bits like every Telegram id.
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
            raise IdentityError(f"telegram identity {value!r} must be a numeric Telegram user id")
        return Identity("telegram", str(int(value)))
    if not _VISITOR.match(value):
        raise IdentityError("webchat visitor id must be 1-128 characters of letters, digits, '_', '-', '.', ':'")
    return Identity("webchat", value)


def parse(text: str, region: str = "US") -> Identity:
    """`"phone:+14155550100"` -> Identity("phone", "+14155550100"), normalized."""
    kind, sep, value = text.partition(":")
    if not sep:
        raise IdentityError(f"identity {text!r} must look like kind:value, e.g. phone:+14155550100")
    return normalize(kind, value, region)
