"""/ext_authz: the gateway entry point, in its three header conventions.

- Envoy ext_authz HTTP with `path_prefix: /ext_authz`: `<METHOD> /ext_authz/<path>`, Host = original host.
- nginx auth_request: bare `/ext_authz` with `X-Original-Method` / `X-Original-URI`.
- Traefik forwardAuth: bare `/ext_authz` with `X-Forwarded-Method` / `X-Forwarded-Uri` / `X-Forwarded-Host`.

The caller's principal is the `URI=` element of `x-forwarded-client-cert`; the destination comes from
`x-authz-namespace` / `x-authz-workload`, defaulting to the serve flags.
"""
import http.client

import pytest

from policy_sets import FRONTEND, GATEWAY_SET, XFCC_FRONTEND

DEFAULTS = ["--default-namespace", "default", "--default-workload", "app=api-service,version=v1"]
DEST = {"x-authz-namespace": "default", "x-authz-workload": "app=api-service,version=v1"}


@pytest.fixture
def gw(start_server):
    return start_server(GATEWAY_SET, args=DEFAULTS)


def raw_request(server, method, target, headers=None, body=None):
    """http.client sends the target byte for byte (no re-quoting, no normalization)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    headers = dict(headers or {})
    headers.setdefault("Host", "api.example.com")
    for k, v in headers.items():
        conn.putheader(k, v)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body.encode() if isinstance(body, str) else body)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def assert_allowed(resp, policy=None, rule_id=None):
    assert resp.status == 200, (resp.status, resp.getheaders())
    assert resp.getheader("x-meshauthz-reason"), resp.getheaders()
    if policy:
        assert resp.getheader("x-meshauthz-policy") == policy, resp.getheaders()
    if rule_id:
        assert resp.getheader("x-meshauthz-rule-id") == rule_id, resp.getheaders()


def assert_denied(resp):
    assert resp.status == 403, (resp.status, resp.getheaders())
    assert resp.getheader("x-meshauthz-reason"), resp.getheaders()


# -- Envoy: path_prefix /ext_authz ------------------------------------------------------------------
def test_path_prefix_allows_the_frontend(gw):
    r = raw_request(gw, "GET", "/ext_authz/api/users", {"x-forwarded-client-cert": XFCC_FRONTEND})
    assert_allowed(r, "default/api-policy", "ns[default]-policy[api-policy]-rule[0]")


def test_path_prefix_with_query_and_body(gw):
    r = raw_request(gw, "POST", "/ext_authz/api/orders?draft=1", {"x-forwarded-client-cert": XFCC_FRONTEND,
                                                                  "Content-Type": "application/json"}, "{}")
    assert_allowed(r, "default/api-policy")


@pytest.mark.parametrize("method,target,why", [
    ("DELETE", "/ext_authz/api/users/1", "only GET/POST"),
    ("GET", "/ext_authz/api", "/api/* does not match /api"),
    ("GET", "/ext_authz/admin", "path outside /api/"),
    ("GET", "/ext_authz/api/admin/users", "the DENY policy wins"),
])
def test_path_prefix_denials(gw, method, target, why):
    assert_denied(raw_request(gw, method, target, {"x-forwarded-client-cert": XFCC_FRONTEND}))


def test_path_prefix_deny_names_the_deny_rule(gw):
    r = raw_request(gw, "GET", "/ext_authz/api/admin/users", {"x-forwarded-client-cert": XFCC_FRONTEND})
    assert_denied(r)
    assert r.getheader("x-meshauthz-policy") == "default/deny-admin"
    assert r.getheader("x-meshauthz-rule-id") == "ns[default]-policy[deny-admin]-rule[0]"


def test_path_prefix_without_client_cert_is_denied(gw):
    assert_denied(raw_request(gw, "GET", "/ext_authz/api/users"))


def test_path_prefix_uses_the_host_header(gw):
    assert_allowed(raw_request(gw, "GET", "/ext_authz/shop/cart", {"Host": "shop.example.com"}))
    assert_allowed(raw_request(gw, "GET", "/ext_authz/shop/cart", {"Host": "SHOP.example.com"}))
    assert_denied(raw_request(gw, "GET", "/ext_authz/shop/cart", {"Host": "evil.example.com"}))


def test_request_headers_are_passed_to_conditions(gw):
    assert_allowed(raw_request(gw, "GET", "/ext_authz/tenant/x", {"X-Tenant": "acme"}))
    assert_denied(raw_request(gw, "GET", "/ext_authz/tenant/x", {"X-Tenant": "other"}))
    assert_denied(raw_request(gw, "GET", "/ext_authz/tenant/x"))


def test_raw_target_is_matched_undecoded(gw):
    """%2F stays %2F: the policy value /raw/a%2Fb matches only the encoded form."""
    assert_allowed(raw_request(gw, "GET", "/ext_authz/raw/a%2Fb"))
    assert_denied(raw_request(gw, "GET", "/ext_authz/raw/a/b"))


def test_destination_headers_override_the_defaults(gw):
    # another workload of default: no ALLOW policy selects it
    r = raw_request(gw, "DELETE", "/ext_authz/anything", {"x-authz-namespace": "default",
                                                          "x-authz-workload": "app=frontend,version=v1"})
    assert_allowed(r)
    r = raw_request(gw, "DELETE", "/ext_authz/anything", {"x-authz-namespace": "other"})
    assert_allowed(r)
    r = raw_request(gw, "DELETE", "/ext_authz/anything", DEST)
    assert_denied(r)


def test_destination_without_defaults(start_server):
    """Issue 7 #5: no --default-* flags and no x-authz-* headers used to judge against namespace `default` with no
    labels, where no policy applies: DELETE was allowed. There is no implicit destination any more."""
    s = start_server(GATEWAY_SET)
    r = raw_request(s, "DELETE", "/ext_authz/api/users")
    assert_denied(r)
    assert "no destination namespace" in r.getheader("x-meshauthz-reason")
    r = raw_request(s, "DELETE", "/ext_authz/api/users", {"x-authz-namespace": "default"})
    assert_denied(r)
    assert "no destination workload" in r.getheader("x-meshauthz-reason")
    assert_denied(raw_request(s, "DELETE", "/ext_authz/api/users", DEST))
    assert_allowed(raw_request(s, "GET", "/ext_authz/api/users", dict(DEST, **{"x-forwarded-client-cert": XFCC_FRONTEND})))


# -- nginx: auth_request with X-Original-* ----------------------------------------------------------
def test_nginx_original_headers(gw):
    h = {"X-Original-Method": "POST", "X-Original-URI": "/api/orders?id=1", "x-forwarded-client-cert": XFCC_FRONTEND}
    assert_allowed(raw_request(gw, "GET", "/ext_authz", h), "default/api-policy")
    h["X-Original-Method"] = "DELETE"
    assert_denied(raw_request(gw, "GET", "/ext_authz", h))
    h["X-Original-Method"] = "GET"
    h["X-Original-URI"] = "/api/admin/x"
    assert_denied(raw_request(gw, "GET", "/ext_authz", h))


def test_nginx_original_uri_is_raw(gw):
    h = {"X-Original-Method": "GET", "X-Original-URI": "/raw/a%2Fb"}
    assert_allowed(raw_request(gw, "GET", "/ext_authz", h))
    h["X-Original-URI"] = "/raw/a/b"
    assert_denied(raw_request(gw, "GET", "/ext_authz", h))


# -- Traefik: forwardAuth with X-Forwarded-* --------------------------------------------------------
def test_traefik_forwarded_headers(gw):
    h = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/shop/cart?item=3", "X-Forwarded-Host": "shop.example.com",
         "X-Forwarded-Proto": "https"}
    assert_allowed(raw_request(gw, "GET", "/ext_authz", h))
    h["X-Forwarded-Host"] = "evil.example.com"
    assert_denied(raw_request(gw, "GET", "/ext_authz", h))


@pytest.mark.parametrize("header,value", [
    ("x-forwarded-client-cert", XFCC_FRONTEND),
    ("x-authz-namespace", "other"),
    ("x-authz-workload", "app=x"),
    ("x-authz-port", "9090"),
    ("x-authz-source-ip", "10.1.2.3"),
])
def test_traefik_refuses_what_a_client_could_have_set(gw, header, value):
    """Traefik's forwardAuth copies the client's headers by default: under its convention no header can carry
    the caller's identity or the destination (issue 7 #2), so one that is present is refused, not believed."""
    h = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/api/users", "X-Forwarded-Host": "api.example.com",
         header: value}
    r = raw_request(gw, "GET", "/ext_authz", h)
    assert_denied(r)
    assert header in r.getheader("x-meshauthz-reason")


# -- x-forwarded-client-cert parsing ----------------------------------------------------------------
@pytest.mark.parametrize("xfcc", [
    "URI=spiffe://" + FRONTEND,
    XFCC_FRONTEND,
    'Hash=abc;Subject="CN=frontend,O=Acme;Inc";URI=spiffe://' + FRONTEND + ";DNS=frontend.default.svc",
    "By=spiffe://cluster.local/ns/default/sa/api-sa;URI=spiffe://" + FRONTEND + ";Hash=abc",
], ids=["uri-only", "by-hash-uri", "quoted-subject", "uri-in-the-middle"])
def test_xfcc_principal(gw, xfcc):
    r = raw_request(gw, "GET", "/ext_authz/api/users", {"x-forwarded-client-cert": xfcc})
    assert_allowed(r, "default/api-policy")


@pytest.mark.parametrize("xfcc", [
    "By=spiffe://" + FRONTEND + ";Hash=abc",
    "URI=spiffe://cluster.local/ns/default/sa/other-sa",
    "URI=spiffe://cluster.local/ns/default/sa/frontend-sa-v2",
], ids=["by-is-not-the-caller", "other-account", "longer-account"])
def test_xfcc_other_identities_are_denied(gw, xfcc):
    assert_denied(raw_request(gw, "GET", "/ext_authz/api/users", {"x-forwarded-client-cert": xfcc}))


def test_xfcc_caller_satisfies_strict_mtls(mesh_server):
    """A verified client identity arrived over mTLS: the example mesh (STRICT) lets the frontend in."""
    h = dict(DEST, **{"x-forwarded-client-cert": XFCC_FRONTEND})
    assert_allowed(raw_request(mesh_server, "GET", "/ext_authz/api/users", h), "default/api-policy")
    del h["x-forwarded-client-cert"]
    assert_denied(raw_request(mesh_server, "GET", "/ext_authz/api/users", h))


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
def test_any_method_is_answered(gw, method):
    r = raw_request(gw, method, "/ext_authz/tenant/x", {"X-Tenant": "acme"})
    assert r.status == 200, method
    r = raw_request(gw, method, "/ext_authz/tenant/x", {"X-Tenant": "nope"})
    assert r.status == 403, method
