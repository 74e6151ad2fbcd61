"""Identity normalization: canonical forms, clear refusals, no fuzziness."""

from __future__ import annotations

import pytest

from hub.identities import IdentityError, normalize, parse
from hub.model import Identity


@pytest.mark.parametrize(
    ("text", "region", "expected"),
    [
        ("phone:+14155550100", "US", Identity("phone", "+14155550100")),
        ("phone:(415) 555-0100", "US", Identity("phone", "+14155550100")),
        ("phone:+1 415-555-0100", "GB", Identity("phone", "+14155550100")),
        ("phone:020 7946 0958", "GB", Identity("phone", "+442079460958")),
        ("PHONE:4155550100", "US", Identity("phone", "+14155550100")),
        ("email:  Ann.Lee@Example.COM ", "US", Identity("email", "ann.lee@example.com")),
        ("telegram:1111111", "US", Identity("telegram", "1111111")),
        ("telegram:007", "US", Identity("telegram", "7")),
        ("webchat:visitor-7f3a_1", "US", Identity("webchat", "visitor-7f3a_1")),
    ],
)
def test_normalizes(text: str, region: str, expected: Identity) -> None:
    assert parse(text, region) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("fax:123", "unknown identity kind 'fax'"),
        ("+14155550100", "must look like kind:value"),
        ("phone:", "empty value"),
        ("phone:call me", "not a phone number"),
        ("phone:12", "not a possible phone number"),
        ("email:ann", "not an email address"),
        ("email:a@b@c.com", "not an email address"),
        ("telegram:@ann", "numeric Telegram user id"),
        ("webchat:<script>", "webchat visitor id"),
    ],
)
def test_refuses_with_reason(text: str, needle: str) -> None:
    with pytest.raises(IdentityError, match=needle):
        parse(text)


def test_no_fuzzy_equality() -> None:
    # Similar is not same: two different numbers or addresses never normalize together.
    assert normalize("phone", "+14155550100") != normalize("phone", "+14155550101")
    assert normalize("email", "ann@example.com") != normalize("email", "ann+x@example.com")
