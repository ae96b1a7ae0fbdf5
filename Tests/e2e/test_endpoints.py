"""Every HTTP endpoint of `meshauthz serve` except /ext_authz (test_ext_authz.py)."""
import datetime
import json
import re
import signal
import socket
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import harness
from policy_sets import (
    ALLOW_NOTHING, API_POLICY, CHECK_ALLOWED, CHECK_DENIED, DENY_ADMIN, GATEWAY_SET, authz, peer_auth,
)

BROKEN_POLICY_FILE = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: broken
  namespace: default
spec:
  rules:
  - from:
    - source:
        ipBlocks: ["10.0.0.0/33"]
"""


@pytest.fixture
def server(start_server):
    return start_server(GATEWAY_SET + [peer_auth("default", "STRICT")])


def json_of(r):
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", r.headers
    return r.json()


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


# -- health and readiness ---------------------------------------------------------------------------
def test_healthz(server):
    r = server.get("/healthz")
    assert r.status_code == 200
    assert json_of(r) == {"status": "ok"}


def test_readyz_summarises_the_loaded_set(server):
    r = server.get("/readyz")
    assert r.status_code == 200
    body = json_of(r)
    assert body["status"] == "ready"
    assert body["policies"] == 3
    assert body["peerAuthentications"] == 1
    assert body["generation"] >= 1
    loaded = parse_time(body["loadedAt"])
    assert loaded.tzinfo is not None, "loadedAt must carry a zone (RFC 3339)"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - loaded).total_seconds()) < 300
    assert body.get("lastReloadError") is None


def test_invalid_policy_dir_serves_health_but_not_ready_and_fails_closed(start_server, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "good.yaml").write_text(harness.yaml.safe_dump(API_POLICY))
    (d / "broken.yaml").write_text(BROKEN_POLICY_FILE)
    s = start_server(policies_dir=d, wait_ready=False)
    assert s.get("/healthz").status_code == 200
    r = s.get("/readyz")
    assert r.status_code == 503
    body = json_of(r)
    assert body["status"] == "not ready"
    err = json.dumps(body["error"])
    assert "broken.yaml" in err and "ipBlocks" in err, body
    # decisions fail closed, even for a request the valid part of the set would allow
    answer = s.check(CHECK_ALLOWED)
    assert answer["allowed"] is False and answer["decision"] == "DENY", answer
    assert answer["stage"] == "not-ready", answer
    assert "broken.yaml" in answer["reason"] or "10.0.0.0/33" in answer["reason"], answer
    r = s.get("/ext_authz/api/users", headers={"x-authz-namespace": "default",
                                               "x-authz-workload": "app=api-service"})
    assert r.status_code == 403
    # the start-up log names the file, the line and the field
    assert re.search(r"broken\.yaml:10(:\d+)?:.*ipBlocks", s.log), s.log


def test_missing_policy_dir_is_not_ready(start_server, tmp_path):
    s = start_server(policies_dir=tmp_path / "does-not-exist", wait_ready=False)
    assert s.get("/healthz").status_code == 200
    r = s.get("/readyz")
    assert r.status_code == 503
    assert json_of(r)["status"] == "not ready"
    assert s.check(CHECK_ALLOWED)["decision"] == "DENY"


# -- metrics ---------------------------------------------------------------------------------------
def scrape(server):
    r = server.get("/metrics")
    assert r.status_code == 200
    assert r.headers.get("Content-Type", "").startswith("text/plain"), r.headers
    samples = {}
    families = {}
    for fam in text_string_to_metric_families(r.text):
        families[fam.name] = fam
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            samples[key] = s.value
    return r.text, families, samples


def sample(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_format_and_counters(server):
    text, families, before = scrape(server)
    for name, kind in (
        ("meshauthz_decisions", "counter"),
        ("meshauthz_decision_duration_seconds", "histogram"),
        ("meshauthz_policies_loaded", "gauge"),
        ("meshauthz_http_requests", "counter"),
        ("meshauthz_policy_reloads", "counter"),
    ):
        assert name in families, f"{name} missing from /metrics:\n{text}"
        assert families[name].type == kind, (name, families[name].type)
    assert "# TYPE meshauthz_decisions_total counter" in text or "# TYPE meshauthz_decisions counter" in text
    loaded = [v for k, v in before.items() if k[0] == "meshauthz_policies_loaded"]
    assert 3 in loaded or sum(loaded) == 4, f"3 AuthorizationPolicies + 1 PeerAuthentication loaded: {loaded}"

    server.check(CHECK_ALLOWED)
    server.check(CHECK_ALLOWED)
    server.check(CHECK_DENIED)
    r = server.post("/v1/check", json=[CHECK_ALLOWED, CHECK_DENIED, CHECK_DENIED])
    assert r.status_code == 200
    server.post("/v1/check", data="{not json")

    _, _, after = scrape(server)
    d = lambda name, **l: sample(after, name, **l) - sample(before, name, **l)  # noqa: E731

    def decisions(samples, **want):
        """meshauthz_decisions_total{endpoint, stage, decision} summed over the labels not asked for."""
        return sum(v for (n, labels), v in samples.items() if n == "meshauthz_decisions_total"
                   and all(dict(labels).get(k) == w for k, w in want.items()))
    assert decisions(after, decision="allow") - decisions(before, decision="allow") == 3
    assert decisions(after, decision="deny") - decisions(before, decision="deny") == 3
    assert d("meshauthz_decisions_total", endpoint="/v1/check", stage="allow-policy", decision="allow") == 3
    assert d("meshauthz_decisions_total", endpoint="/v1/check", stage="default-deny", decision="deny") == 3
    assert d("meshauthz_decision_duration_seconds_count") == 6
    assert d("meshauthz_decision_duration_seconds_sum") >= 0
    inf = sample(after, "meshauthz_decision_duration_seconds_bucket", le="+Inf")
    assert inf == sample(after, "meshauthz_decision_duration_seconds_count")
    buckets = sorted(
        ((float(dict(k[1])["le"]), v) for k, v in after.items() if k[0] == "meshauthz_decision_duration_seconds_bucket"),
    )
    assert len(buckets) >= 5, "the latency histogram needs useful buckets"
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "buckets must be cumulative"
    assert any(le <= 0.001 for le, _ in buckets), "sub-millisecond buckets expected for a PDP"
    codes = {(dict(k[1])["endpoint"], dict(k[1])["code"]): v for k, v in after.items()
             if k[0] == "meshauthz_http_requests_total"}
    codes_before = {(dict(k[1])["endpoint"], dict(k[1])["code"]): v for k, v in before.items()
                    if k[0] == "meshauthz_http_requests_total"}
    check_ep = [ep for ep, _ in codes if "check" in ep and "ext" not in ep]
    assert check_ep, f"no /v1/check endpoint label in {sorted(codes)}"
    ep = check_ep[0]
    assert codes.get((ep, "200"), 0) - codes_before.get((ep, "200"), 0) == 4
    assert codes.get((ep, "400"), 0) - codes_before.get((ep, "400"), 0) == 1
    assert sample(after, "meshauthz_policy_reloads_total", result="failure") == 0


# -- /v1/check -------------------------------------------------------------------------------------
def test_check_answer_shape(server):
    a = server.check(CHECK_ALLOWED)
    assert a["allowed"] is True and a["decision"] == "ALLOW"
    assert a["policy"] == "default/api-policy" and a["rule"] == 0
    assert a["ruleId"] == "ns[default]-policy[api-policy]-rule[0]"
    assert a["stage"] == "allow-policy" and a["mtlsMode"] == "STRICT"
    assert isinstance(a["reason"], str) and a["reason"]
    assert a["dryRun"] == [] and a["audit"] == []
    d = server.check(CHECK_DENIED)
    assert d["allowed"] is False and d["decision"] == "DENY" and d["stage"] == "default-deny"
    assert d["policy"] is None and d["rule"] is None and d["ruleId"] is None


def test_check_reports_audit_and_deny_rule(server):
    body = json.loads(json.dumps(CHECK_ALLOWED))
    body["request"]["path"] = "/api/orders"
    a = server.check(body)
    assert a["decision"] == "ALLOW"
    assert a["audit"] == [{"policy": "default/audit-orders", "rule": 0,
                           "ruleId": "ns[default]-policy[audit-orders]-rule[0]"}], a
    body["request"]["path"] = "/api/admin/users"
    d = server.check(body)
    assert d["decision"] == "DENY" and d["stage"] == "deny-policy"
    assert d["ruleId"] == "ns[default]-policy[deny-admin]-rule[0]"


def test_check_plaintext_under_strict(server):
    body = {"source": {"ip": "10.0.0.5", "mtls": False}, "destination": CHECK_ALLOWED["destination"],
            "request": {"method": "GET", "path": "/api/users"}}
    a = server.check(body)
    assert a["decision"] == "DENY" and a["stage"] == "peer-authentication" and a["mtlsMode"] == "STRICT"


def test_batch_answers_in_order(server):
    bodies = [CHECK_ALLOWED, CHECK_DENIED, {}, CHECK_ALLOWED]
    r = server.post("/v1/check", json=bodies)
    assert r.status_code == 200
    answers = json_of(r)
    assert [a["decision"] for a in answers] == ["ALLOW", "DENY", "ALLOW", "ALLOW"]
    r = server.post("/v1/check", json=[])
    assert r.status_code == 200 and r.json() == []


def test_large_batch_body(server):
    """A body far larger than one read (libmicrohttpd hands it over in pieces), at the batch limit."""
    bodies = [CHECK_ALLOWED, CHECK_DENIED] * 500
    data = json.dumps(bodies)
    assert len(data) > 200_000
    r = server.post("/v1/check", data=data, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    answers = r.json()
    assert len(answers) == 1000
    assert answers[0]["decision"] == "ALLOW" and answers[1]["decision"] == "DENY"
    assert answers[-2]["decision"] == "ALLOW" and answers[-1]["decision"] == "DENY"


def test_batch_over_the_limit_is_400(server):
    r = server.post("/v1/check", json=[{}] * 1001)
    assert r.status_code == 400
    assert json_of(r)["error"]["code"] == "invalid_request"


def test_oversized_body_is_413_and_the_server_goes_on(server):
    r = server.post("/v1/check", data=b"[" + b"{}," * 1_500_000 + b"{}]")
    assert r.status_code == 413
    assert server.check(CHECK_ALLOWED)["decision"] == "ALLOW"


def test_body_sent_slowly_in_pieces(server):
    body = json.dumps(CHECK_ALLOWED).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        for i in range(0, len(body), 40):
            s.sendall(body[i:i + 40])
            time.sleep(0.02)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    assert json.loads(payload)["decision"] == "ALLOW"


def test_chunked_request_body(server):
    def gen():
        body = json.dumps([CHECK_ALLOWED, CHECK_DENIED]).encode()
        for i in range(0, len(body), 100):
            yield body[i:i + 100]
    r = server.post("/v1/check", data=gen(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert [a["decision"] for a in r.json()] == ["ALLOW", "DENY"]


def test_concurrent_clients(server):
    """Bounded load from 8 threads: every answer right, nothing dropped."""
    import concurrent.futures

    def worker(n):
        sess = requests.Session()
        wrong = 0
        for i in range(150):
            body, want = (CHECK_ALLOWED, "ALLOW") if (i + n) % 2 else (CHECK_DENIED, "DENY")
            r = sess.post(server.url("/v1/check"), json=body, timeout=10)
            wrong += r.status_code != 200 or r.json()["decision"] != want
        sess.close()
        return wrong

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(worker, range(8))) == 0
    assert server.get("/healthz").status_code == 200


NOT_JSON = (b"{\"source\": ", b"")

BAD_BODIES = [
    ("bad-json", b"{\"source\": ", None),
    ("empty-body", b"", None),
    ("scalar", b"42", None),
    ("string", b"\"check\"", None),
    ("unknown-top-key", {"sourc": {}}, "sourc"),
    ("unknown-nested-key", {"source": {"principals": ["x"]}}, "source.principals"),
    ("source-not-object", {"source": "frontend"}, "source"),
    ("mtls-wrong-type", {"source": {"mtls": "yes"}}, "source.mtls"),
    ("principal-wrong-type", {"source": {"principal": 7}}, "source.principal"),
    ("bad-ip", {"source": {"ip": "10.0.0.256"}}, "source.ip"),
    ("bad-remote-ip", {"source": {"remoteIp": "not-an-ip"}}, "source.remoteIp"),
    ("bad-destination-ip", {"destination": {"ip": "1.2.3"}}, "destination.ip"),
    ("port-out-of-range", {"destination": {"port": 70000}}, "destination.port"),
    ("port-negative", {"destination": {"port": -1}}, "destination.port"),
    ("port-string", {"destination": {"port": "8080"}}, "destination.port"),
    ("labels-not-object", {"destination": {"labels": ["app=x"]}}, "destination.labels"),
    ("label-value-number", {"destination": {"labels": {"app": 1}}}, "destination.labels"),
    ("headers-not-strings", {"request": {"headers": {"x-a": ["1", "2"]}}}, "request.headers"),
    ("method-wrong-type", {"request": {"method": ["GET"]}}, "request.method"),
    ("sni-wrong-type", {"connection": {"sni": True}}, "connection.sni"),
    ("array-with-bad-element", [CHECK_ALLOWED, {"source": {"ip": "nope"}}], "source.ip"),
    ("array-with-scalar", [CHECK_ALLOWED, 1], None),
]


@pytest.mark.parametrize("body,field", [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
def test_check_rejects_malformed_body(server, body, field):
    if isinstance(body, bytes):
        r = server.post("/v1/check", data=body, headers={"Content-Type": "application/json"})
    else:
        r = server.post("/v1/check", json=body)
    assert r.status_code == 400, r.text
    err = json_of(r)["error"]
    # Text that is not JSON at all is `invalid_json`; JSON of the wrong shape is `invalid_request`.
    assert err["code"] == ("invalid_json" if body in NOT_JSON else "invalid_request"), err
    assert isinstance(err["message"], str) and err["message"]
    if field is not None:
        assert field in (err.get("field") or ""), err


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_check_other_methods_are_405(server, method):
    r = server.request(method, "/v1/check")
    assert r.status_code == 405, r.text


def test_unknown_path_is_404(server):
    assert server.get("/v2/check").status_code == 404


# -- /v1/policies ----------------------------------------------------------------------------------
def test_policies_lists_what_is_loaded(start_server, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    (d / "api.yaml").write_text(harness.yaml.safe_dump_all([API_POLICY, DENY_ADMIN]))
    (d / "dry.yml").write_text(harness.yaml.safe_dump(
        authz("dry-deny", {"action": "DENY", "rules": [{}]}, annotations={"istio.io/dry-run": "true"})))
    (d / "mtls.yaml").write_text(harness.yaml.safe_dump(peer_auth("default", "STRICT")))
    s = start_server(policies_dir=d)
    r = s.get("/v1/policies")
    assert r.status_code == 200
    items = json_of(r)["policies"]
    by_name = {(p["namespace"], p["name"], p["kind"]): p for p in items}
    api = by_name[("default", "api-policy", "AuthorizationPolicy")]
    assert api["action"] == "ALLOW" and api["rules"] == 4 and api["dryRun"] is False
    assert api["file"].endswith("api.yaml")
    deny = by_name[("default", "deny-admin", "AuthorizationPolicy")]
    assert deny["action"] == "DENY" and deny["rules"] == 1
    dry = by_name[("default", "dry-deny", "AuthorizationPolicy")]
    assert dry["dryRun"] is True and dry["file"].endswith("dry.yml")
    assert s.readyz()["policies"] == 3
    assert s.readyz()["peerAuthentications"] == 1


def test_policies_of_the_example_mesh(mesh_server):
    items = mesh_server.get("/v1/policies").json()["policies"]
    names = {(p["namespace"], p["name"]) for p in items if p["kind"] == "AuthorizationPolicy"}
    for ns, name in [("default", "api-policy"), ("edge", "api-gateway"), ("auth", "auth-service"),
                     ("core", "user-service"), ("core", "order-service"), ("core", "notification-service"),
                     ("billing", "billing-service"), ("edge", "allow-nothing"), ("core", "allow-nothing")]:
        assert (ns, name) in names
    ra = [p for p in items if p["kind"] == "RequestAuthentication"]
    assert [(p["namespace"], p["name"], p["rules"], p["action"]) for p in ra] == [("core", "saas-users", 1, None)], ra
    assert ra[0]["file"].endswith("tenants.yaml")


# -- process life cycle ----------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stops_cleanly_on_signal(start_server, sig):
    s = start_server([ALLOW_NOTHING])
    port = s.port
    s.check({})  # leave a keep-alive connection open
    assert s.stop(sig) == 0, s.log
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    with socket.socket() as sock:  # the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_keep_alive_is_kept(server):
    """Answering too early makes libmicrohttpd close the connection; a reused connection proves otherwise."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for _ in range(3):
        conn.request("POST", "/v1/check", body=json.dumps(CHECK_ALLOWED), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        assert not resp.will_close, "server closed a keep-alive connection"
    sock = conn.sock
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    assert conn.sock is sock
    conn.close()
