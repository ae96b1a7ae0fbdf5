"""Requests refused before the API sees them (issue 7, items 11 and 12): under /ext_authz a denial a
gateway understands (403, x-meshauthz-decision: DENY, a reason; nginx turns a 431 into a 500), elsewhere
HTTP's own status. The connection is closed after each."""
import json

import pytest

BIG = b"a" * 20_000  # over the default --max-header-bytes (16384), within the 32 KiB connection pool

GATEWAY_TARGETS = [b"/ext_authz", b"/ext_authz?x=1", b"/ext_authz/api/users"]

REFUSED = [
    # (name, request head and body with TARGET as placeholder, API status, error code)
    ("headers too large", b"GET TARGET HTTP/1.1\r\nHost: a\r\nX-Big: " + BIG + b"\r\n\r\n", 431, "headers_too_large"),
    ("body too large", b"POST TARGET HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413, "body_too_large"),
    ("conflicting Content-Length",
     b"POST TARGET HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{} ", 400, "bad_framing"),
    ("Content-Length with Transfer-Encoding",
     b"POST TARGET HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     400, "bad_framing"),
    ("duplicate Host", b"GET TARGET HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_framing"),
]


def parse(raw: bytes):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@pytest.fixture(scope="module")
def server(binary, tmp_path_factory):
    import harness
    d = tmp_path_factory.mktemp("refusals")
    harness.write_policies(d, [])
    s = harness.Server(d, extra_args=["--allow-empty"], binary=binary)
    yield s
    s.stop()


@pytest.mark.parametrize("target", GATEWAY_TARGETS, ids=lambda t: t.decode())
@pytest.mark.parametrize("name,raw,api_status,code", REFUSED, ids=[r[0] for r in REFUSED])
def test_gateway_refusals_are_403_denials_with_a_reason(server, target, name, raw, api_status, code):
    status, headers, body = parse(server.raw(raw.replace(b"TARGET", target)))
    assert status == 403
    assert headers["x-meshauthz-decision"] == "DENY"
    assert headers["x-meshauthz-reason"].startswith("request refused: ")
    assert headers["connection"].lower() == "close"
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"]


@pytest.mark.parametrize("name,raw,api_status,code", REFUSED, ids=[r[0] for r in REFUSED])
def test_api_refusals_keep_their_http_status(server, name, raw, api_status, code):
    status, headers, _ = parse(server.raw(raw.replace(b"TARGET", b"/v1/check")))
    assert status == api_status
    assert "x-meshauthz-decision" not in headers
    assert headers["connection"].lower() == "close"


def test_a_prefix_lookalike_is_not_the_gateway(server):
    status, headers, _ = parse(server.raw(b"GET /ext_authzX HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"))
    assert status == 400
    assert "x-meshauthz-decision" not in headers
