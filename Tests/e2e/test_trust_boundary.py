"""Issue 7: fail closed at the trust boundary. Each attack of the issue, through the real server and, for the
forwarded headers, through the real nginx and Envoy configs as shipped (examples/), sent by an ordinary client
(127.0.0.1; 127.0.0.2 is the trusted front proxy of those configs).

Every injection test has a control: the same header sent by a trusted forwarder straight to meshauthz does change
the decision, so the test proves the gateway config (or meshauthz's convention rules) stopped it, not that the bait
was dead.
"""
from __future__ import annotations

import http.client

import pytest

import gateways as gw
from policy_sets import XFCC_FRONTEND, authz
from test_gateways import (  # noqa: F401 - module fixtures, reused here
    DEST_HEADERS, FRONT_PROXY, FRONTEND, TRAEFIK_DEFAULTS, assert_allowed, assert_denied, envoy_xfcc, front,
    logs, nginx, pdp, pdp_traefik, pki, started, traefik_request, upstream, workdir, xfcc,
)

# (name, header, value, method, path): each header would turn this request into an allow if believed.
INJECTIONS = [
    ("xfcc", "x-forwarded-client-cert", xfcc(FRONTEND), "GET", "/api/users"),
    ("source-ip", "x-authz-source-ip", "10.1.2.3", "GET", "/bait/ip"),
    ("port", "x-authz-port", "9090", "GET", "/bait/port"),
    ("namespace", "x-authz-namespace", "other", "DELETE", "/api/users/1"),
    ("workload", "x-authz-workload", "app=other", "DELETE", "/api/users/1"),
    ("original-uri", "X-Original-URI", "/status", "GET", "/api/secret"),
    ("forwarded-uri", "X-Forwarded-Uri", "/status", "GET", "/api/secret"),
]


@pytest.mark.parametrize("name,header,value,method,path", INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_bait_works_when_a_trusted_forwarder_says_so(pdp, pdp_traefik, name, header, value, method, path):
    """The control: from a trusted forwarder (loopback) straight to meshauthz, the header does decide."""
    if header == "X-Original-URI":
        r = pdp.send(method, "/ext_authz", dict(DEST_HEADERS, **{header: value, "X-Original-Method": "GET"}))
    elif header == "X-Forwarded-Uri":
        r = pdp_traefik.send(method, "/ext_authz", traefik_request("GET", value, {}))
    else:
        r = pdp.send(method, "/ext_authz" + path, dict(DEST_HEADERS, **{header: value}))
    assert r.status == 200, f"{name}: the bait does not work, the injection tests would prove nothing: {r!r}\n{logs(pdp)}"


@pytest.mark.parametrize("name,header,value,method,path", INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_injected_header_has_no_effect_through_nginx(nginx, pdp, name, header, value, method, path):
    r = gw.send(nginx.port, method, path, {header: value})
    assert_denied(r, nginx, pdp)


@pytest.mark.parametrize("name,header,value,method,path", INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_injected_header_has_no_effect_through_envoy(envoy_xfcc, pdp, name, header, value, method, path):
    r = gw.send(envoy_xfcc.port, method, path, {header: value})
    assert_denied(r, envoy_xfcc, pdp)


def test_front_proxy_identity_still_works_through_both(nginx, envoy_xfcc, pdp):
    """What the configs keep: the trusted front proxy's XFCC reaches meshauthz."""
    for proc in (nginx, envoy_xfcc):
        assert_allowed(front(proc.port, "GET", "/api/users", {"x-forwarded-client-cert": xfcc(FRONTEND)}), proc, pdp)


@pytest.mark.parametrize("name,header,value,method,path", INJECTIONS, ids=[i[0] for i in INJECTIONS])
def test_injected_header_has_no_effect_through_traefik(pdp_traefik, name, header, value, method, path):
    """examples/traefik/dynamic.yaml lists the client headers forwardAuth passes: none of these."""
    h = traefik_request(method, path, {header: value})
    r = pdp_traefik.send("GET", "/ext_authz", h)
    assert r.status == 403, f"{r!r}\n{logs(pdp_traefik)}"


@pytest.mark.parametrize("name,header,value,method,path", INJECTIONS[:5], ids=[i[0] for i in INJECTIONS[:5]])
def test_traefik_convention_refuses_headers_it_cannot_vouch_for(pdp_traefik, name, header, value, method, path):
    """A Traefik without authRequestHeaders copies every client header: meshauthz refuses them itself."""
    h = dict(traefik_request(method, path, {}), **{header: value})
    r = pdp_traefik.send("GET", "/ext_authz", h)
    assert r.status == 403 and header.lower() in r.header("x-meshauthz-reason").lower(), f"{r!r}"


# -- convention confusion -----------------------------------------------------------------------------------------
def raw(server_port, method, target, headers):
    conn = http.client.HTTPConnection("127.0.0.1", server_port, timeout=10)
    conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    headers = dict(headers)
    headers.setdefault("Host", "api.example.com")
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheader("x-meshauthz-reason") or "", body


MIXED = [
    ("original-and-forwarded", "GET", "/ext_authz",
     {"X-Original-URI": "/status", "X-Original-Method": "GET", "X-Forwarded-Uri": "/api/secret", "X-Forwarded-Method": "GET"}),
    ("original-uri-on-envoy-path", "GET", "/ext_authz/api/secret", {"X-Original-URI": "/status"}),
    ("forwarded-uri-on-envoy-path", "GET", "/ext_authz/api/secret", {"X-Forwarded-Uri": "/status"}),
    ("original-method-with-forwarded-uri", "GET", "/ext_authz",
     {"X-Original-Method": "GET", "X-Forwarded-Uri": "/status", "X-Forwarded-Method": "GET"}),
]


@pytest.mark.parametrize("name,method,target,headers", MIXED, ids=[m[0] for m in MIXED])
def test_mixed_conventions_are_refused(pdp, name, method, target, headers):
    """Issue 7 #2: `X-Original-URI: /status` with `X-Forwarded-Uri: /api/secret` was judged on /status."""
    status, reason, _ = raw(pdp.port, method, target, dict(DEST_HEADERS, **headers, **{"X-Forwarded-Host": "x"}))
    assert status == 403 and "more than one gateway convention" in reason, (status, reason)


@pytest.mark.parametrize("header", ["x-authz-namespace", "x-forwarded-client-cert", "X-Original-URI", "Host"])
def test_repeated_trusted_header_is_refused(pdp, header):
    conn = http.client.HTTPConnection("127.0.0.1", pdp.port, timeout=10)
    target = "/ext_authz" if header == "X-Original-URI" else "/ext_authz/status"
    conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
    if header != "Host":
        conn.putheader("Host", "api.example.com")
    for k, v in dict(DEST_HEADERS, **{"X-Original-Method": "GET"} if header == "X-Original-URI" else {}).items():
        if k != header:
            conn.putheader(k, v)
    first = {"x-authz-namespace": "default", "x-forwarded-client-cert": XFCC_FRONTEND, "X-Original-URI": "/status",
             "Host": "api.example.com"}[header]
    conn.putheader(header, first)
    conn.putheader(header, {"x-authz-namespace": "other", "X-Original-URI": "/api/secret"}.get(header, first))
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    conn.close()
    # libmicrohttpd itself may refuse a repeated Host with 400; either way the request is not allowed
    assert resp.status in (400, 403), resp.status
    if resp.status == 403:
        reason = resp.getheader("x-meshauthz-reason")
        assert "more than once" in reason or "more than one Host" in reason, resp.getheaders()


# -- methods --------------------------------------------------------------------------------------------------------
DENY_DELETE = [
    authz("allow-all", {"selector": {"matchLabels": {"app": "api-service"}}, "action": "ALLOW", "rules": [{}]}),
    authz("deny-delete", {"selector": {"matchLabels": {"app": "api-service"}}, "action": "DENY",
                          "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]}),
]
BAD_METHODS = ["delete", "DeLeTe", "DELETE ", "DELETE\t", "GE(T", "D3LETE"]
# In a header, trailing whitespace is not part of the value (RFC 9110 §5.5): `X-Original-Method: DELETE ` is DELETE.
TRAILING_SPACE = {"DELETE ", "DELETE\t"}


@pytest.fixture(scope="module")
def deny_delete(binary, tmp_path_factory):
    import harness
    d = tmp_path_factory.mktemp("deny-delete")
    harness.write_policies(d, DENY_DELETE)
    s = harness.Server(d, extra_args=["--default-namespace", "default", "--default-workload", "app=api-service"],
                       binary=binary)
    yield s
    s.stop()


@pytest.mark.parametrize("method", BAD_METHODS)
@pytest.mark.parametrize("convention", ["nginx", "traefik"])
def test_bad_method_never_passes_a_deny(deny_delete, method, convention):
    """Issue 7 #3: DELETE denied by `methods: ["DELETE"]` passed as `delete`, `DeLeTe`, `DELETE ` ..."""
    if convention == "nginx":
        h = {"X-Original-URI": "/x", "X-Original-Method": method}
    else:
        h = {"X-Forwarded-Uri": "/x", "X-Forwarded-Method": method, "X-Forwarded-Host": "api.example.com"}
    status, reason, _ = raw(deny_delete.port, "GET", "/ext_authz", h)
    if method in TRAILING_SPACE:
        assert status == 403 and "deny-delete" in reason, (method, status, reason)
    else:
        assert status == 403 and "upper-case token" in reason, (method, status, reason)
    ok = dict(h, **{k: "DELETE" for k in h if k.endswith("Method")})
    assert raw(deny_delete.port, "GET", "/ext_authz", ok)[0] == 403
    ok = dict(h, **{k: "GET" for k in h if k.endswith("Method")})
    assert raw(deny_delete.port, "GET", "/ext_authz", ok)[0] == 200


def test_bad_method_on_the_envoy_path(deny_delete):
    status, reason, _ = raw(deny_delete.port, "delete", "/ext_authz/x", {})
    assert status in (400, 403), status  # libmicrohttpd may refuse the request line itself
    assert raw(deny_delete.port, "GET", "/ext_authz/x", {})[0] == 200


@pytest.mark.parametrize("method", BAD_METHODS + [""])
def test_bad_method_is_a_400_on_v1_check(deny_delete, method):
    r = deny_delete.post("/v1/check", json={"destination": {"namespace": "default", "labels": {"app": "api-service"}},
                                           "request": {"method": method, "path": "/x"}})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "request.method"


# -- /v1/check judges what the sidecar judges -----------------------------------------------------------------------
PUBLIC_ADMIN = [
    authz("deny-admin", {"selector": {"matchLabels": {"app": "web"}}, "action": "DENY",
                         "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}),
    authz("allow-public", {"selector": {"matchLabels": {"app": "web"}}, "action": "ALLOW",
                           "rules": [{"to": [{"operation": {"paths": ["/public/*"]}}]}]}),
]


def web_check(path):
    return {"destination": {"namespace": "default", "labels": {"app": "web"}}, "request": {"method": "GET", "path": path}}


def test_v1_check_normalizes_like_the_sidecar(start_server):
    """Issue 7 #4: `/public/../admin` was judged raw (ALLOW) where /ext_authz and the sidecar normalize (DENY)."""
    s = start_server(PUBLIC_ADMIN, args=["--default-namespace", "default", "--default-workload", "app=web"])
    answer = s.check(web_check("/public/../admin"))
    assert answer["decision"] == "DENY" and answer["normalizedPath"] == "/admin", answer
    assert raw(s.port, "GET", "/ext_authz/public/../admin", {})[0] == 403
    plain = s.check(web_check("/public/ok"))
    assert plain["decision"] == "ALLOW" and "normalizedPath" not in plain, plain
    r = s.post("/v1/check", json=web_check("/public/%00"))
    assert r.status_code == 400 and r.json()["error"]["field"] == "request.path", r.text


def test_v1_check_warns_when_nothing_applies(start_server):
    s = start_server(PUBLIC_ADMIN)
    typo = s.check({"destination": {"namespace": "defualt", "labels": {"app": "web"}}, "request": {"path": "/admin"}})
    assert typo["decision"] == "ALLOW" and typo["stage"] == "no-allow-policy", typo
    assert typo["warnings"] and "defualt" in typo["warnings"][0], typo
    fine = s.check(web_check("/admin"))
    assert "warnings" not in fine, fine


# -- the request body's strictness (issue 7 #15) --------------------------------------------------------------------
@pytest.mark.parametrize("body,field", [
    ({"destination": {"port": "PORT"}}, "destination.port"),
    ({"request": None}, "request"),
    ({"source": None}, "source"),
], ids=["port-exponent", "request-null", "source-null"])
def test_v1_check_rejects_loose_forms(start_server, body, field):
    s = start_server(PUBLIC_ADMIN)
    import json as _json
    text = _json.dumps(body).replace('"PORT"', "1e3")
    r = s.post("/v1/check", data=text, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
    r = s.post("/v1/check", data=text.replace("1e3", "80.0"), headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text


# -- XFCC (issue 7 #13) ---------------------------------------------------------------------------------------------
def test_xfcc_several_uri_sans_are_refused(pdp):
    """Envoy's RBAC matches every URI SAN of the peer; meshauthz judges one identity, so it refuses to guess."""
    h = dict(DEST_HEADERS, **{"x-forwarded-client-cert": f"By=x;URI={FRONTEND};URI=spiffe://cluster.local/ns/x/sa/y"})
    r = pdp.send("GET", "/ext_authz/api/users", h)
    assert r.status == 403 and "several URI SANs" in r.header("x-meshauthz-reason"), r


def test_xfcc_empty_uri_does_not_hide_the_next(pdp):
    h = dict(DEST_HEADERS, **{"x-forwarded-client-cert": f"By=x;URI=;URI={FRONTEND}"})
    assert pdp.send("GET", "/ext_authz/api/users", h).status == 200


def test_xfcc_empty_trailing_line_keeps_the_principal(pdp):
    conn = http.client.HTTPConnection("127.0.0.1", pdp.port, timeout=10)
    conn.putrequest("GET", "/ext_authz/api/users", skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", "api.example.com")
    for k, v in DEST_HEADERS.items():
        conn.putheader(k, v)
    conn.putheader("x-forwarded-client-cert", xfcc(FRONTEND))
    conn.putheader("x-forwarded-client-cert", "")
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 200, resp.getheaders()
