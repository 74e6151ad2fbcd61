"""The signature scheme and the target guard, as pure functions (the wire tests are in test_deliveries.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from hub.webhooks import signing
from hub.webhooks.targets import PublicResolver, TargetError, check_url


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"id": 1}'
    want = "v1=" + hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signing.signature("s3cret", 1700000000, body) == want
    headers = signing.headers("s3cret", body, 7, "message.received", now=1700000000)
    assert headers["Hub-Signature"] == want and headers["Hub-Timestamp"] == "1700000000"
    assert headers["Hub-Delivery"] == "7" and headers["Hub-Event"] == "message.received"
    assert signing.verify("s3cret", headers, body, now=1700000100)
    assert not signing.verify("s3cret", headers, body + b" ", now=1700000100)  # body changed
    assert not signing.verify("other", headers, body, now=1700000100)  # wrong secret
    assert not signing.verify("s3cret", headers, body, now=1700000000 + 301)  # replayed late
    forged = headers | {"Hub-Timestamp": "1700000200"}  # a newer timestamp on the old signature
    assert not signing.verify("s3cret", forged, body, now=1700000200)


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://93.184.216.34:8080/x", "https://[2606:4700::1]/"])
def test_public_targets_pass(url: str) -> None:
    assert check_url(url, allow_private=False) == url


def test_private_targets_pass_only_when_allowed() -> None:
    with pytest.raises(TargetError, match="allow_private_targets"):
        check_url("http://192.168.1.10/hook", allow_private=False)
    assert check_url("http://192.168.1.10/hook", allow_private=True)
    with pytest.raises(TargetError, match="http"):
        check_url("gopher://example.com", allow_private=True)


async def test_names_resolving_inside_are_refused_at_delivery() -> None:
    with pytest.raises(OSError, match="private, loopback or reserved"):
        await PublicResolver(allow_private=False).resolve("localhost", 80)
    found = await PublicResolver(allow_private=True).resolve("localhost", 80)
    assert found and all(r["host"] in ("127.0.0.1", "::1") for r in found)
