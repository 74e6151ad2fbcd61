"""What counts as a score, the email link's signature, and the web chat's rating frame: table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from hub.channels.webchat.channel import _rating
from hub.csat.surveys import link_token, parse_score, verify_token


@pytest.mark.parametrize(("text", "expected"), [
    ("4", (4, "")),
    (" 5/5 ", (5, "")),
    ("3 - slow but fine", (3, "slow but fine")),
    ("2, nobody called back", (2, "nobody called back")),
    ("1.", (1, "")),
    ("5!! great", (5, "great")),
    ("0", None),
    ("6", None),
    ("12", None),
    ("3 items missing? 4 boxes", (3, "items missing? 4 boxes")),
    ("3 4", None),
    ("4.5", None),
    ("my order 4", None),
    ("", None),
    ("five", None),
])
def test_what_counts_as_a_score(text: str, expected: tuple[int, str] | None) -> None:
    assert parse_score(text) == expected


def test_a_link_token_verifies_only_with_its_secret_and_id() -> None:
    token = link_token("secret-one", 42)
    assert verify_token("secret-one", token) == 42
    assert verify_token("secret-two", token) is None
    assert verify_token("", token) is None, "no secret: no links at all"
    head, mac = token.split(".")
    assert verify_token("secret-one", f"43.{mac}") is None
    assert verify_token("secret-one", f"{head}.{mac[:-1]}{'1' if mac[-1] == '0' else '0'}") is None
    assert verify_token("secret-one", "42") is None and verify_token("secret-one", "x.y") is None
    assert verify_token("secret-one", "9" * 40 + "." + mac) is None


@pytest.mark.parametrize(("raw", "why"), [
    ("5", "rating must be"),
    ({"survey": "1", "score": 5}, "rating.survey"),
    ({"survey": True, "score": 5}, "rating.survey"),
    ({"survey": 1, "score": 6}, "rating.score"),
    ({"survey": 1, "score": 4.0}, "rating.score"),
    ({"survey": 1, "score": True}, "rating.score"),
    ({"survey": 1, "score": 4, "comment": 7}, "rating.comment"),
])
def test_a_bad_rating_frame_is_refused_with_the_reason(raw: Any, why: str) -> None:
    rating, reason = _rating(raw)
    assert rating is None and reason is not None and reason.startswith(why)


def test_a_good_rating_frame() -> None:
    assert _rating({"survey": 7, "score": 4, "comment": "  ok "}) == ({"survey": 7, "score": 4, "comment": "ok"}, None)
    assert _rating(None) == (None, None)
