"""Request bodies read by hub.api.errors.parse_json: orjson on the fast path, the values and answers of `json`."""

from __future__ import annotations

import json
import math

import pytest

from hub.api.errors import BadBody, parse_json

SAME_AS_JSON = [
    b'{"identity": "phone:+14155550100", "text": "hello", "meta": {"n": [1, 2.5, true, null]}}',
    b"123456789012345678901234567890",  # orjson alone reads it as a float
    b'{"id": 18446744073709551616, "x": 1e3}',
    b"1e400",
    b"NaN",
    b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
    b'{"a": 1, "a": 2}',
    b"-0.0",
    b"",
]


@pytest.mark.parametrize("raw", SAME_AS_JSON)
def test_a_body_reads_as_json_reads_it(raw: bytes) -> None:
    want = json.loads(raw or b"null")
    got = parse_json(raw)
    assert type(got) is type(want)
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert json.dumps(got) == json.dumps(want)


@pytest.mark.parametrize(("raw", "status", "message"), [
    (b'{"text": "a\\u0000b"}', 422, "text: contains a NUL character"),
    (b'{"text": "\\ud800"}', 422, "text: contains a lone surrogate"),
    (b'{"a": ' * 40 + b"1" + b"}" * 40, 400, "nested too deeply"),
    (b"[" * 5000 + b"]" * 5000, 400, "nested too deeply"),
    (b'{"a": 1,}', 400, "malformed JSON: Expecting property name"),
    (b'"\xff"', 400, "malformed JSON: 'utf-8' codec can't decode"),
])
def test_a_body_is_refused_as_before(raw: bytes, status: int, message: str) -> None:
    with pytest.raises(BadBody) as e:
        parse_json(raw)
    assert e.value.status == status and message in str(e.value), str(e.value)

