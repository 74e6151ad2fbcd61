"""X-Twilio-Signature: accepted exactly when twilio's RequestValidator.validate accepts, at one HMAC a good webhook."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from hub.channels.twilio.signature import SignatureCheck

TOKEN = "test-auth-token"
PATH = "/webhooks/twilio/sms?x=1"
PARAMS = {"AccountSid": "AC" + "a" * 32, "Body": "hello", "From": "+14155550100", "To": "+14155550199",
          "MessageSid": "SM" + "1" * 32, "NumMedia": "0"}
SHA256 = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"


def _signed(url: str, token: str = TOKEN, algorithm: str | None = None) -> str:
    return str(RequestValidator(token).compute_signature(url, PARAMS, algorithm))


CASES = [
    # (public url, the URL Twilio signed, signed with, settings header)
    ("https://hub.example.com", "https://hub.example.com" + PATH, TOKEN, ""),
    ("https://hub.example.com", "https://hub.example.com:443" + PATH, TOKEN, ""),  # Twilio added the port
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080" + PATH, TOKEN, ""),
    ("http://127.0.0.1:8080", "http://127.0.0.1" + PATH, TOKEN, ""),  # Twilio dropped it
    ("https://hub.example.com", "https://hub.example.com" + PATH, "not-the-token", ""),
    ("https://hub.example.com", "https://other.example.com" + PATH, TOKEN, ""),
    ("https://hub.example.com", "https://hub.example.com/webhooks/twilio/sms?x=2", TOKEN, ""),
    ("https://hub.example.com", "https://hub.example.com" + PATH, TOKEN, SHA256),
]


@pytest.mark.parametrize(("public", "signed_url", "token", "settings"), CASES)
def test_a_signature_is_accepted_exactly_when_twilios_validator_accepts_it(
    public: str, signed_url: str, token: str, settings: str
) -> None:
    algorithm = "HMAC_SHA256" if settings else None
    signature = _signed(signed_url, token, algorithm)
    url = public + PATH
    form = MultiDict(PARAMS)
    want = RequestValidator(TOKEN).validate(url, form, signature, algorithm)
    assert SignatureCheck(TOKEN, public, "enforce").valid(url, form, signature, settings) is want
    assert want is (token == TOKEN and "other" not in signed_url and "x=2" not in signed_url)


def test_unknown_algorithms_and_non_base64_signatures_are_refused_not_raised() -> None:
    check = SignatureCheck(TOKEN, "https://hub.example.com", "enforce")
    url, form = "https://hub.example.com" + PATH, MultiDict(PARAMS)
    assert not check.valid(url, form, _signed(url), "algorithm=HMAC_MD5")
    assert not check.valid(url, form, "é" * 28)
    assert not check.valid(url, form, "")


def test_a_good_signature_costs_one_hmac() -> None:
    """validate computed the signature over the URL with and without its port on every webhook: twice the HMAC
    and the parameters' sort, on the event loop, for each SMS."""
    check = SignatureCheck(TOKEN, "https://hub.example.com", "enforce")
    url, form = "https://hub.example.com" + PATH, MultiDict(PARAMS)
    validator: Any = check._validator
    computed: list[str] = []
    compute = validator.compute_signature

    def counting(uri: str, params: Any, algorithm: str | None = None) -> str:
        computed.append(uri)
        return str(compute(uri, params, algorithm))

    validator.compute_signature = counting
    assert check.valid(url, form, _signed(url))
    assert computed == [url]
    computed.clear()
    assert check.valid(url, form, _signed("https://hub.example.com:443" + PATH))  # the other form: a second one
    assert computed == [url, "https://hub.example.com:443" + PATH]
