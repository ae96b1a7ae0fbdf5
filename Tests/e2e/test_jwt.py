"""RequestAuthentication (JWT) through the real server: the Envoy-recorded cases of Tests/fixtures/jwt-oracle on
/ext_authz (test_cases.py runs them on /v1/check), then token locations, output headers, the verified-token cache,
metrics and reload, with tokens minted here (jwt_tokens.py)."""
import json
import os
import re
import signal

import pytest
import yaml

import harness
from jwt_tokens import Issuer, allow_policy, request_authentication
from test_reload import eventually, metric

ENGINES = [e for e in os.environ.get("MESHAUTHZ_ENGINES", "reference,compiled").split(",") if e]
ORACLE = sorted((harness.FIXTURES / "jwt-oracle").glob("*.yaml"))
CASES = [(e, p, i) for e in ENGINES for p in ORACLE for i in range(len(harness.load_case(p)["checks"]))]
STATUS = {"ALLOW": 200, "DENY": 403, "UNAUTHENTICATED": 401}


def ext_authz(server, check):
    """The check as Envoy's ext_authz would send it: /ext_authz<path>, the original headers, the destination."""
    req, dest = check["request"], check["destination"]
    headers = {k: str(v) for k, v in (req.get("headers") or {}).items()}
    headers["Host"] = req.get("host", "svc")
    headers["x-authz-namespace"] = dest["namespace"]
    headers["x-authz-workload"] = ",".join(f"{k}={v}" for k, v in dest.get("labels", {}).items())
    if "port" in dest:
        headers["x-authz-port"] = str(dest["port"])
    return server.request(req.get("method", "GET"), "/ext_authz" + req.get("path", "/"), headers=headers)


def test_oracle_cases_are_present():
    assert len(ORACLE) >= 4 and len(CASES) >= 40 * len(ENGINES)


@pytest.mark.parametrize("engine,path,index", CASES, ids=[f"{e}:{harness.case_id(p)}#{i}" for e, p, i in CASES])
def test_oracle_through_ext_authz(case_servers, engine, path, index):
    check = harness.load_case(path)["checks"][index]
    r = ext_authz(case_servers.get(path, engine), check)
    assert r.status_code == STATUS[check["expect"]], f"{check['why']}: {r.status_code} {r.headers} {r.text}"
    # Envoy's own rejection (401, or the audience's 403) carries its status text and www-authenticate.
    envoy = re.search(r"oracle: (401|403) (.*?) --", check["why"])
    if envoy and envoy.group(2) != "RBAC: access denied":
        assert r.text == envoy.group(2), r.text
        host, path_ = check["request"]["host"], check["request"]["path"]
        assert r.headers["www-authenticate"] == f'Bearer realm="http://{host}{path_}", error="invalid_token"'
    else:
        assert "www-authenticate" not in r.headers


# -- tokens minted here ----------------------------------------------------------------------------------------
NS, APP = "core", {"app": "api"}
DEST = {"namespace": NS, "labels": APP}


def gateway(s, path="/api", headers=None, method="GET"):
    h = {"Host": "api.test", "x-authz-namespace": NS, "x-authz-workload": "app=api", **(headers or {})}
    return s.request(method, "/ext_authz" + path, headers=h)


def serve(start_server, tmp_path, rules, policies=None, args=()):
    d = tmp_path / "p"
    d.mkdir(parents=True, exist_ok=True)
    docs = [request_authentication("jwt", NS, APP, rules)] + (policies or [
        allow_policy("users", NS, APP, [{"from": [{"source": {"requestPrincipals": ["*"]}}]}])])
    (d / "policies.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return start_server(policies_dir=d, args=["--reload-settle", "0", *args]), d


@pytest.mark.parametrize("alg", ["RS256", "RS384", "PS256", "PS512", "ES256", "ES384", "EdDSA"])
def test_each_algorithm_verifies_and_a_foreign_key_does_not(start_server, tmp_path, alg):
    issuer, stranger = Issuer(alg), Issuer(alg)
    s, _ = serve(start_server, tmp_path, [{"issuer": issuer.iss, "jwks": issuer.jwks()}])
    good = issuer.token({"sub": "alice", "exp": 4102444800})
    assert gateway(s, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    forged = stranger.token({"sub": "alice", "exp": 4102444800})
    r = gateway(s, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.text == "Jwt verification fails", r.text
    assert gateway(s).status_code == 403  # no token: no identity, the ALLOW on requestPrincipals fails


def test_cookie_and_param_locations(start_server, tmp_path):
    issuer = Issuer()
    s, _ = serve(start_server, tmp_path, [{"issuer": issuer.iss, "jwks": issuer.jwks(), "fromCookies": ["session"],
                                          "fromParams": ["t"]}])
    tok = issuer.token({"sub": "alice"})
    assert gateway(s, headers={"Cookie": f'theme=dark; session="{tok}"'}).status_code == 200
    assert gateway(s, path=f"/api?x=1&t={tok}").status_code == 200
    # the default locations are replaced: Authorization is not read at all
    assert gateway(s, headers={"Authorization": f"Bearer {tok}"}).status_code == 403
    assert gateway(s, path=f"/api?access_token={tok}").status_code == 403
    assert gateway(s, headers={"Cookie": "session=garbage"}).status_code == 401
    # /v1/check reads the same cookie and the same parameter
    body = {"source": {"mtls": False}, "destination": DEST, "request": {"method": "GET", "path": "/api",
                                                                      "headers": {"cookie": f"session={tok}"}}}
    answer = s.check(body)
    assert answer["decision"] == "ALLOW" and answer["requestPrincipal"] == f"{issuer.iss}/alice", answer
    body["request"] = {"method": "GET", "path": f"/api?t={tok}"}
    assert s.check(body)["decision"] == "ALLOW"


def test_output_headers_on_allow(start_server, tmp_path):
    issuer = Issuer("ES256")
    rules = [{"issuer": issuer.iss, "jwks": issuer.jwks(), "outputPayloadToHeader": "x-jwt-payload",
              "outputClaimToHeaders": [{"header": "x-tenant", "claim": "org.tenant"}, {"header": "x-admin", "claim": "admin"}]}]
    s, _ = serve(start_server, tmp_path, rules)
    tok = issuer.token({"sub": "alice", "org": {"tenant": "acme"}, "admin": True})
    r = gateway(s, headers={"Authorization": f"Bearer {tok}", "x-tenant": "evil"})
    assert r.status_code == 200, r.text
    assert r.headers["x-tenant"] == "acme" and r.headers["x-admin"] == "true"
    assert json.loads(__import__("base64").urlsafe_b64decode(r.headers["x-jwt-payload"] + "==")) == {
        "iss": issuer.iss, "sub": "alice", "org": {"tenant": "acme"}, "admin": True}
    # what the sidecar strips: the verified token (not forwarded); the output headers are set, replacing the client's
    assert r.headers["x-envoy-auth-headers-to-remove"] == "authorization"
    # without a token, a client's own x-tenant is stripped (and no identity: denied here)
    r = gateway(s, headers={"x-tenant": "acme"})
    assert r.status_code == 403 and "x-tenant" not in r.headers
    open_policy = allow_policy("any", NS, APP, [{}])
    s2, _ = serve(start_server, tmp_path / "open", rules, [open_policy])
    r = gateway(s2, headers={"x-tenant": "acme"})
    assert r.status_code == 200 and "x-tenant" not in r.headers, r.headers
    assert set(r.headers["x-envoy-auth-headers-to-remove"].split(",")) == {"x-admin", "x-jwt-payload", "x-tenant"}


def test_request_headers_conditions_see_the_claim_header_not_the_clients(start_server, tmp_path):
    issuer = Issuer()
    rules = [{"issuer": issuer.iss, "jwks": issuer.jwks(), "outputClaimToHeaders": [{"header": "x-tenant", "claim": "tenant"}]}]
    policy = allow_policy("tenant", NS, APP, [{"when": [{"key": "request.headers[x-tenant]", "values": ["acme"]}]}])
    s, _ = serve(start_server, tmp_path, rules, [policy])
    assert gateway(s, headers={"x-tenant": "acme"}).status_code == 403  # stripped: the client cannot claim it
    tok = issuer.token({"sub": "bob", "tenant": "acme"})
    assert gateway(s, headers={"Authorization": f"Bearer {tok}", "x-tenant": "globex"}).status_code == 200
    other = issuer.token({"sub": "bob", "tenant": "globex"})
    assert gateway(s, headers={"Authorization": f"Bearer {other}", "x-tenant": "acme"}).status_code == 403


def test_verified_tokens_are_cached_and_counted(start_server, tmp_path):
    issuer = Issuer()
    s, _ = serve(start_server, tmp_path, [{"issuer": issuer.iss, "jwks": issuer.jwks()}])
    tok = issuer.token({"sub": "alice", "exp": 4102444800})
    for _ in range(3):
        assert gateway(s, headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    assert metric(s, "meshauthz_jwt_validations_total", issuer=issuer.iss, result="valid") == 1
    assert metric(s, "meshauthz_jwt_validations_total", issuer=issuer.iss, result="cached") == 2
    expired = issuer.token({"sub": "alice", "exp": 1000})
    assert gateway(s, headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    assert metric(s, "meshauthz_jwt_validations_total", issuer=issuer.iss, result="expired") == 1
    # a cached token is checked against the clock and the rule again: a tampered copy is not a cache hit
    head, payload, sig = tok.split(".")
    assert gateway(s, headers={"Authorization": f"Bearer {head}.{payload}.{sig[:-2]}AA"}).status_code == 401


def test_what_if_identity_and_a_token_together_are_refused(start_server, tmp_path):
    issuer = Issuer()
    s, _ = serve(start_server, tmp_path, [{"issuer": issuer.iss, "jwks": issuer.jwks()}])
    tok = issuer.token({"sub": "alice"})
    body = {"source": {"requestPrincipal": "x/y"}, "destination": DEST,
            "request": {"method": "GET", "path": "/", "headers": {"authorization": f"Bearer {tok}"}}}
    r = s.post("/v1/check", json=body)
    assert r.status_code == 400 and r.json()["error"]["field"] == "source.requestPrincipal", r.text
    r = s.post("/v1/check", json=[{"destination": DEST}, {**body, "source": {}, "request": {**body["request"], "claims": {"sub": "y"}}}])
    assert r.status_code == 400 and r.json()["error"]["field"] == "[1].request.claims", r.text
    # the what-if identity alone is still taken as verified (no token for a rule to read)
    del body["request"]["headers"]
    assert s.check(body)["decision"] == "ALLOW"


def test_cors_preflight_is_not_authenticated(start_server, tmp_path):
    issuer = Issuer()
    policy = allow_policy("any", NS, APP, [{}])
    s, _ = serve(start_server, tmp_path, [{"issuer": issuer.iss, "jwks": issuer.jwks()}], [policy])
    bad = {"Authorization": "Bearer x.y.z"}
    assert gateway(s, headers=bad).status_code == 401
    pre = {**bad, "Origin": "https://app.test", "Access-Control-Request-Method": "POST"}
    assert gateway(s, headers=pre, method="OPTIONS").status_code == 200
    assert gateway(s, headers={**bad, "Origin": "https://app.test"}, method="OPTIONS").status_code == 401


def test_request_authentication_added_changed_removed_while_serving(start_server, tmp_path):
    first, second = Issuer(iss="https://one.test"), Issuer(iss="https://two.test")
    s, d = serve(start_server, tmp_path, [{"issuer": first.iss, "jwks": first.jwks()}])
    tok = first.token({"sub": "alice"})
    auth = {"Authorization": f"Bearer {tok}"}
    assert gateway(s, headers=auth).status_code == 200

    def reload(docs):
        gen = s.readyz()["generation"]
        (d / "policies.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
        s.send_signal(signal.SIGHUP)
        assert eventually(lambda: s.readyz()["generation"] > gen, timeout=10), s.log

    policy = allow_policy("users", NS, APP, [{"from": [{"source": {"requestPrincipals": ["*"]}}]}])
    # changed: the issuer is now another one, so this token's issuer is not configured
    reload([request_authentication("jwt", NS, APP, [{"issuer": second.iss, "jwks": second.jwks()}]), policy])
    r = gateway(s, headers=auth)
    assert r.status_code == 401 and r.text == "Jwt issuer is not configured"
    # removed: nothing validates the token, so there is no identity (and no 401)
    reload([policy])
    assert gateway(s, headers=auth).status_code == 403
    # added back: valid again (the cache of the first set did not survive it)
    reload([request_authentication("jwt", NS, APP, [{"issuer": first.iss, "jwks": first.jwks()}]), policy])
    assert gateway(s, headers=auth).status_code == 200
    assert s.readyz()["generation"] >= 4


def test_a_bad_jwks_is_refused_with_its_line(start_server, tmp_path, binary):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "ra.yaml").write_text(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: core}\n"
        "spec:\n  jwtRules:\n  - issuer: https://a.test\n    jwksUri: https://a.test/keys\n"
        "  - issuer: https://a.test\n    jwksUri: https://a.test/other\n"
        "  - issuer: https://b.test\n    jwks: '{\"keys\": [{\"kty\": \"DSA\"}]}'\n")
    p = harness.subprocess.run([binary, "validate", "--policies", str(d), "--allow-empty"], capture_output=True, text=True)
    assert p.returncode == 2, p
    assert "ra.yaml:8:" in p.stderr and "spec.jwtRules[1].issuer: duplicate issuer" in p.stderr, p.stderr
    assert "ra.yaml:11:" in p.stderr and "spec.jwtRules[2].jwks" in p.stderr and "DSA" in p.stderr, p.stderr


def test_cli_check_validates_tokens_too(tmp_path, binary):
    issuer = Issuer("ES256")
    d = tmp_path / "p"
    d.mkdir()
    docs = [request_authentication("jwt", NS, APP, [{"issuer": issuer.iss, "jwks": issuer.jwks()}]),
            allow_policy("users", NS, APP, [{"from": [{"source": {"requestPrincipals": [f"{issuer.iss}/alice"]}}]}])]
    (d / "policies.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))

    def check(token):
        body = {"destination": DEST, "request": {"method": "GET", "path": "/", "headers": {"authorization": f"Bearer {token}"}}}
        return harness.subprocess.run([binary, "check", "--policies", str(d)], input=json.dumps(body),
                                      capture_output=True, text=True)

    p = check(issuer.token({"sub": "alice"}))
    assert p.returncode == 0 and json.loads(p.stdout)["requestPrincipal"] == f"{issuer.iss}/alice", p
    p = check(issuer.token({"sub": "alice", "exp": 1000}))
    answer = json.loads(p.stdout)
    assert p.returncode == 1 and answer["stage"] == "request-authentication" and "Jwt is expired" in answer["reason"], p


def test_cli_explain_validates_tokens_and_traces_the_verified_identity(tmp_path, binary):
    """`meshauthz explain` decides as `check` does: the token first, then the trace of the request with its
    verified identity (a trace without it would explain a denial the request does not get)."""
    issuer = Issuer("RS256")
    d = tmp_path / "p"
    d.mkdir()
    docs = [request_authentication("jwt", NS, APP, [{"issuer": issuer.iss, "jwks": issuer.jwks()}]),
            allow_policy("users", NS, APP, [{"from": [{"source": {"requestPrincipals": [f"{issuer.iss}/alice"]}}]}])]
    (d / "policies.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))

    def explain(token, *args):
        body = {"destination": DEST, "request": {"method": "GET", "path": "/", "headers": {"authorization": f"Bearer {token}"}}}
        return harness.subprocess.run([binary, "explain", "--policies", str(d), *args], input=json.dumps(body),
                                      capture_output=True, text=True)

    p = explain(issuer.token({"sub": "alice"}))
    assert p.returncode == 0, p
    assert f"verified token: request principal {issuer.iss}/alice" in p.stdout, p.stdout
    assert "✔" in p.stdout and "requestPrincipals" in p.stdout, p.stdout
    p = explain(issuer.token({"sub": "alice"}), "--output", "json")
    answer = json.loads(p.stdout)
    assert p.returncode == 0 and answer["allowed"] and answer["requestPrincipal"] == f"{issuer.iss}/alice", p
    assert answer["explain"]["policies"][0]["rules"][0]["matched"] is True, answer["explain"]
    # another user: traced with that identity, the field that did not match named
    p = explain(issuer.token({"sub": "bob"}))
    assert p.returncode == 1 and f"{issuer.iss}/bob" in p.stdout, p.stdout
    # a rejected token is the answer: no policy to explain
    p = explain(issuer.token({"sub": "alice", "exp": 1000}))
    assert p.returncode == 1 and "DENY before any policy" in p.stdout and "Jwt is expired" in p.stdout, p
    p = explain(issuer.token({"sub": "alice", "exp": 1000}), "--output", "json")
    assert p.returncode == 1 and json.loads(p.stdout)["stage"] == "request-authentication", p


def test_nginx_passes_the_tokens_output_headers_upstream(binary, tmp_path):
    """examples/nginx/nginx.conf as shipped, in front of an RS256 RequestAuthentication with outputClaimToHeaders:
    the upstream gets x-tenant from the verified token (never the client's), and no Authorization header."""
    import gateways as gw
    from test_gateways import FRONT_PROXY, need, started
    need(gw.nginx_path(), "nginx (apt-get install nginx)")
    issuer = Issuer("RS256")
    policies = tmp_path / "policies"
    policies.mkdir()
    target = ("default", {"app": "api-service"})  # the destination nginx.conf names
    docs = [request_authentication("jwt", target[0], target[1], [{
                "issuer": issuer.iss, "jwks": issuer.jwks(),
                "outputClaimToHeaders": [{"header": "x-tenant", "claim": "tenant"}]}]),
            allow_policy("users", target[0], target[1], [
                {"from": [{"source": {"requestPrincipals": [f"{issuer.iss}/alice"]}}]},
                {"to": [{"operation": {"paths": ["/public"]}}]}])]
    (policies / "policies.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    upstream = started(gw.Upstream)
    pdp = started(lambda: gw.Pdp(binary, policies=policies, args=["--gateway", "nginx"]))
    nginx = started(lambda: gw.Nginx(gw.EXAMPLES / "nginx" / "nginx.conf",
                                     dict(UPSTREAM_PORT=upstream.port, MESHAUTHZ_PORT=pdp.port,
                                          TRUSTED_FRONT_PROXY=f"{FRONT_PROXY}/32"), tmp_path / "nginx"))
    try:
        token = issuer.token({"sub": "alice", "tenant": "acme"})
        r = gw.send(nginx.port, "GET", "/orders", {"Authorization": f"Bearer {token}", "x-tenant": "globex"})
        assert r.status == 200, (r.status, r.body)
        seen = {k.lower(): v for k, v in r.json()["headers"].items()}
        assert seen.get("x-tenant") == "acme", seen
        assert "authorization" not in seen, seen
        # No token: the client's x-tenant never reaches the upstream (the sidecar strips it too).
        r = gw.send(nginx.port, "GET", "/public", {"x-tenant": "globex"})
        assert r.status == 200, (r.status, r.body)
        assert "x-tenant" not in {k.lower() for k in r.json()["headers"]}, r.json()["headers"]
        # A bad token: the 401 reaches the client.
        r = gw.send(nginx.port, "GET", "/orders", {"Authorization": f"Bearer {issuer.token({'sub': 'alice', 'exp': 1000})}"})
        assert r.status == 401, (r.status, r.body)
    finally:
        for p in (nginx, pdp, upstream):
            p.stop()
