"""Request bodies read by hub.api.errors.parse_json: orjson on the fast path, the values and answers of `json`."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from types import FrameType

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
    # an object of strings, read without a walk of its values unless its bytes hold an escape
    (b'{"a\\u0000": "x"}', 422, "(body): contains a NUL character"),
    (b'{"text": "\\uD800", "name": "Ann"}', 422, "text: contains a lone surrogate"),
    (b'{"text": "\\udfff"}', 422, "text: contains a lone surrogate"),
])
def test_a_body_is_refused_as_before(raw: bytes, status: int, message: str) -> None:
    with pytest.raises(BadBody) as e:
        parse_json(raw)
    assert e.value.status == status and message in str(e.value), str(e.value)



@pytest.mark.parametrize("raw", [
    b'{"text": "caf\\u00e9 \\ud83d\\ude00", "name": "\\\\u0000 is six characters"}',
    b'{"identity": "phone:+14155550100", "n": 1}',
    b'{"text": "1.5e3"}',
    b"{}",
])
def test_an_object_of_strings_reads_as_json_reads_it(raw: bytes) -> None:
    assert parse_json(raw) == json.loads(raw)


def _lines_run(fn: Callable[[], object]) -> int:
    """Python lines FN runs: a count of work that the machine's load does not change."""
    lines = 0

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        nonlocal lines
        lines += event == "line"
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return lines


def test_the_usual_inbound_body_is_read_without_a_walk_of_its_values() -> None:
    """An object of strings costs the event loop a parse and a few checks of the raw bytes, not a walk that builds a
    path for every value (docs/performance.md, `loopwork`): 98 lines before, 8 now."""
    raw = b'{"identity": "phone:+14155550100", "text": "hello", "external_id": "x-1", "name": "Ann"}'
    assert parse_json(raw) == json.loads(raw)
    assert _lines_run(lambda: parse_json(raw)) <= 10
