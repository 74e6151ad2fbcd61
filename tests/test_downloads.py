"""Files people uploaded leave the hub as downloads: RFC 6266/5987 names, a clean Content-Type, nosniff and a
sandbox policy, on every route that serves them (the signed Twilio media route is tested in tests/channels)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.downloads import content_disposition, media_type

Client = TestClient[Any, Any]


@pytest.mark.parametrize(("name", "header"), [
    ("invoice.pdf", 'attachment; filename="invoice.pdf"'),
    ("Rechnung März.pdf", "attachment; filename=\"Rechnung Marz.pdf\"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"),
    ('a"b\\c.txt', "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b_c.txt"),
    ("evil\r\nSet-Cookie: x=1.txt", "attachment; filename=\"evilSet-Cookie_ x_1.txt\"; "
                                     "filename*=UTF-8''evilSet-Cookie%3A%20x%3D1.txt"),
    ("../../etc/passwd", 'attachment; filename="_.._etc_passwd"'),
    ("写真.jpg", "attachment; filename=\"attachment.jpg\"; filename*=UTF-8''%E5%86%99%E7%9C%9F.jpg"),
    ("", 'attachment; filename="attachment"'),
])
def test_file_names_are_encoded_per_rfc_6266_and_5987(name: str, header: str) -> None:
    assert content_disposition(name) == header
    assert "\r" not in header and "\n" not in header


@pytest.mark.parametrize(("stored", "served"), [
    ("image/png", "image/png"),
    ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
    ("Text/HTML; Charset=\"UTF-8\"; boundary=x", "text/html; charset=utf-8"),
    ("nonsense", "application/octet-stream"),
    ("text/html\r\nX-Evil: 1", "application/octet-stream"),
    ("", "application/octet-stream"),
])
def test_content_types_are_cleaned(stored: str, served: str) -> None:
    assert media_type(stored) == served


async def test_a_customer_file_downloads_as_an_attachment(client: Client, admin_headers: dict[str, str]) -> None:
    page = b"<script>alert(document.cookie)</script>"
    resp = await client.post("/api/v1/inbound", headers=admin_headers, json={
        "identity": "email:ann@example.com", "text": "see file",
        "attachments": [{"filename": "report.html", "content_type": "text/html; charset=utf-8",
                         "data_base64": base64.b64encode(page).decode()}]})
    assert resp.status == 201, await resp.text()
    [att] = (await resp.json())["message"]["attachments"]
    got = await client.get(f"/api/v1/attachments/{att['id']}", headers=admin_headers)
    assert got.status == 200 and await got.read() == page
    assert got.headers["Content-Disposition"] == 'attachment; filename="report.html"'
    assert got.headers["Content-Type"] == "text/html; charset=utf-8"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
