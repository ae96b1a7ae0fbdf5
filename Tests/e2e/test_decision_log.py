"""Decision logs (`serve --decision-log`), the /ext_authz shadow headers and the operator metrics, through the
real server: JSON lines to a file, what is never written, rotation on SIGUSR1, drops counted under a burst."""
import datetime
import json
import os
import re
import signal
import subprocess
import time

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import harness
from policy_sets import API_POLICY, AUDIT_ALL, CHECK_ALLOWED, CHECK_DENIED, DENY_ADMIN, XFCC_FRONTEND, authz

DEFAULTS = ["--default-namespace", "default", "--default-workload", "app=api-service,version=v1"]
SHADOW = authz("shadow-deny", {"selector": {"matchLabels": {"app": "api-service"}}, "action": "DENY",
                               "rules": [{"to": [{"operation": {"paths": ["/api/orders"]}}]}]},
               annotations={"istio.io/dry-run": "true"})
POLICIES = [API_POLICY, DENY_ADMIN, AUDIT_ALL, SHADOW]
KEYS = ["time", "requestId", "endpoint", "decision", "stage", "policy", "ruleId", "principal", "sourceIp", "namespace",
        "workload", "method", "host", "path", "mtls", "dryRun", "audit", "latencyMicros"]
SECRETS = {"authorization": "Bearer TOKEN-aaaa", "cookie": "session=COOKIE-bbbb",
           "proxy-authorization": "Basic PROXY-cccc"}
XFCC_WITH_SECRETS = ("By=spiffe://cluster.local/ns/default/sa/api-sa;Hash=HASH-dddd;"
                     "Cert=\"-----BEGIN%20CERTIFICATE-----CERT-eeee\";URI=spiffe://cluster.local/ns/default/sa/frontend-sa")


def metrics(server):
    out = {}
    for family in text_string_to_metric_families(server.get("/metrics").text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric(server, name, **labels):
    return metrics(server).get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(condition, what, seconds=10.0):
    """Polls (bounded) until condition() holds; the test fails with `what` otherwise. Not a timing assertion."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"never happened: {what}")


def lines(path):
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def written(server):
    return metric(server, "meshauthz_decision_log_lines_total")


@pytest.fixture
def logged(start_server, tmp_path):
    def start(mode="all", extra=()):
        path = tmp_path / "decisions.log"
        s = start_server(policies=POLICIES, args=DEFAULTS + ["--decision-log", mode, "--decision-log-file", str(path), *extra])
        return s, path
    return start


def test_all_decisions_as_json_lines(logged):
    s, path = logged("all")
    r = s.get("/ext_authz/api/users?token=QUERY-ffff", headers={
        "x-forwarded-client-cert": XFCC_WITH_SECRETS, "x-request-id": "req-42", **SECRETS})
    assert r.status_code == 200
    assert s.check(CHECK_DENIED)["decision"] == "DENY"
    wait_until(lambda: written(s) == 2, "2 lines written")
    ext, check = lines(path)
    assert list(ext) == KEYS and list(check) == KEYS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ext["time"])
    # the date is computed without gmtime: it must be the real one (within a day, whatever the load)
    stamp = datetime.datetime.strptime(ext["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((stamp - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 86400
    assert ext["requestId"] == "req-42" and re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{16}", check["requestId"])
    assert {k: ext[k] for k in KEYS[2:-1]} == {
        "endpoint": "/ext_authz", "decision": "ALLOW", "stage": "allow-policy", "policy": "default/api-policy",
        "ruleId": "ns[default]-policy[api-policy]-rule[0]", "principal": "spiffe://cluster.local/ns/default/sa/frontend-sa",
        "sourceIp": "127.0.0.1", "namespace": "default", "workload": "app=api-service,version=v1", "method": "GET",
        "host": f"127.0.0.1:{s.port}", "path": "/api/users", "mtls": True, "dryRun": [], "audit": []}
    assert isinstance(ext["latencyMicros"], int) and ext["latencyMicros"] >= 0
    assert (check["endpoint"], check["decision"], check["stage"]) == ("/v1/check", "DENY", "default-deny")
    assert check["workload"] == "app=api-service"


def test_never_logs_credentials_or_queries(logged):
    s, path = logged("all")
    s.get("/ext_authz/api/users?token=QUERY-ffff", headers={"x-forwarded-client-cert": XFCC_WITH_SECRETS, **SECRETS})
    s.get("/ext_authz", headers={"X-Original-Method": "GET", "X-Original-URI": "/api/x?key=QUERY-gggg",
                                 "x-forwarded-client-cert": XFCC_WITH_SECRETS, **SECRETS})
    wait_until(lambda: written(s) == 2, "2 lines written")
    text = path.read_text()
    for secret in ["TOKEN-aaaa", "COOKIE-bbbb", "PROXY-cccc", "HASH-dddd", "CERT-eeee", "QUERY-ffff", "QUERY-gggg",
                   "api-sa", "Bearer"]:
        assert secret not in text, f"{secret} written to the decision log:\n{text}"


def test_deny_mode_logs_denials_only(logged):
    s, path = logged("deny")
    s.check(CHECK_ALLOWED)
    s.check(CHECK_DENIED)
    s.get("/ext_authz/api/users")  # no caller: default deny
    wait_until(lambda: written(s) == 2, "2 lines written")
    assert [(l["endpoint"], l["decision"]) for l in lines(path)] == [("/v1/check", "DENY"), ("/ext_authz", "DENY")]


def test_shadow_results_in_headers_log_and_metrics(logged):
    s, path = logged("all")
    r = s.get("/ext_authz/api/orders", headers={"x-forwarded-client-cert": XFCC_FRONTEND})
    assert r.status_code == 200
    assert r.headers["x-meshauthz-dry-run"] == "DENY ns[default]-policy[shadow-deny]-rule[0]"
    assert r.headers["x-meshauthz-audit"] == "ns[default]-policy[audit-orders]-rule[0]"
    r = s.get("/ext_authz/api/users", headers={"x-forwarded-client-cert": XFCC_FRONTEND})
    assert "x-meshauthz-dry-run" not in r.headers and "x-meshauthz-audit" not in r.headers
    wait_until(lambda: written(s) == 2, "2 lines written")
    first = lines(path)[0]
    assert first["dryRun"] == [{"policy": "default/shadow-deny", "ruleId": "ns[default]-policy[shadow-deny]-rule[0]",
                                "wouldBe": "DENY"}]
    assert first["audit"] == [{"policy": "default/audit-orders", "ruleId": "ns[default]-policy[audit-orders]-rule[0]"}]
    assert metric(s, "meshauthz_dry_run_total", policy="default/shadow-deny", would_be="DENY") == 1
    assert metric(s, "meshauthz_audit_total", policy="default/audit-orders") == 1


def test_reported_answers_served_again_keep_their_own_reports_and_counts(logged):
    """Answers that report dry-run or AUDIT rules are built once per decision and reported rules, then reused:
    each request still gets the reports of its own decision, and each is counted and logged."""
    s, path = logged("all")
    for _ in range(3):
        r = s.get("/ext_authz/api/orders", headers={"x-forwarded-client-cert": XFCC_FRONTEND})
        assert r.status_code == 200
        assert r.headers["x-meshauthz-dry-run"] == "DENY ns[default]-policy[shadow-deny]-rule[0]"
        assert r.headers["x-meshauthz-audit"] == "ns[default]-policy[audit-orders]-rule[0]"
        assert r.json()["dryRun"][0]["ruleId"] == "ns[default]-policy[shadow-deny]-rule[0]"
        r = s.get("/ext_authz/api/users", headers={"x-forwarded-client-cert": XFCC_FRONTEND})
        assert r.status_code == 200 and r.json()["dryRun"] == [] and r.json()["audit"] == []
        assert "x-meshauthz-dry-run" not in r.headers and "x-meshauthz-audit" not in r.headers
        r = s.get("/ext_authz/api/admin/x", headers={"x-forwarded-client-cert": XFCC_FRONTEND})
        assert r.status_code == 403
    wait_until(lambda: written(s) == 9, "9 lines written")
    assert [len(l["dryRun"]) for l in lines(path)][0::3] == [1, 1, 1]
    assert metric(s, "meshauthz_dry_run_total", policy="default/shadow-deny", would_be="DENY") == 3
    assert metric(s, "meshauthz_audit_total", policy="default/audit-orders") == 3


def test_shadow_counters_of_a_removed_policy_go_with_it(start_server, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    (d / "policies.yaml").write_text(yaml.safe_dump_all(POLICIES))
    s = start_server(policies_dir=d, args=DEFAULTS + ["--reload-settle", "0"])
    assert s.get("/ext_authz/api/orders", headers={"x-forwarded-client-cert": XFCC_FRONTEND}).status_code == 200
    assert metric(s, "meshauthz_dry_run_total", policy="default/shadow-deny", would_be="DENY") == 1
    assert metric(s, "meshauthz_audit_total", policy="default/audit-orders") == 1
    generation = s.readyz()["generation"]
    (d / "policies.yaml").write_text(yaml.safe_dump_all([API_POLICY, DENY_ADMIN, AUDIT_ALL]))  # the dry run is gone
    wait_until(lambda: s.readyz()["generation"] > generation, "the reload")
    assert ("meshauthz_dry_run_total", (("policy", "default/shadow-deny"), ("would_be", "DENY"))) not in metrics(s)
    assert metric(s, "meshauthz_audit_total", policy="default/audit-orders") == 1  # still there, still counted


def test_sigusr1_reopens_the_file(logged, tmp_path):
    s, path = logged("all")
    s.check(CHECK_ALLOWED)
    wait_until(lambda: written(s) == 1, "first line written")
    rotated = tmp_path / "decisions.log.1"
    os.rename(path, rotated)  # as logrotate does
    s.check(CHECK_DENIED)  # still written to the renamed file: the descriptor is the same
    wait_until(lambda: written(s) == 2, "second line written")
    s.send_signal(signal.SIGUSR1)
    wait_until(lambda: metric(s, "meshauthz_decision_log_reopens_total") == 1, "the reopen")
    s.check(CHECK_ALLOWED)
    wait_until(lambda: written(s) == 3, "third line written")
    assert [l["decision"] for l in lines(rotated)] == ["ALLOW", "DENY"]
    assert [l["decision"] for l in lines(path)] == ["ALLOW"]
    assert s.proc.poll() is None, "SIGUSR1 must not stop the server"


def test_a_burst_against_a_stuck_log_drops_and_counts(start_server, tmp_path):
    """The log's reader stops reading (a full pipe): decisions are still all answered, the overflow is counted."""
    fifo = tmp_path / "stuck.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opened, never read until the end
    try:
        s = start_server(policies=POLICIES, args=DEFAULTS + [
            "--decision-log", "all", "--decision-log-file", str(fifo), "--decision-log-queue", "16"])
        burst = 1500
        statuses = [s.get("/ext_authz/api/users", headers={"x-forwarded-client-cert": XFCC_FRONTEND}).status_code
                    for _ in range(burst)]
        assert statuses == [200] * burst
        dropped = metric(s, "meshauthz_decision_log_dropped_total", reason="queue_full")
        assert dropped > 0, "a pipe nobody reads holds ~64 KiB: 1,500 lines of ~400 bytes cannot all fit"
        data = b""
        def drained():
            nonlocal data
            try:
                while chunk := os.read(reader, 1 << 16):
                    data += chunk
            except BlockingIOError:
                pass
            return written(s) + metric(s, "meshauthz_decision_log_dropped_total", reason="queue_full") == burst
        wait_until(drained, "every line written or dropped")
        drained()
        got = [json.loads(l) for l in data.decode().splitlines()]
        assert len(got) == written(s) == burst - metric(s, "meshauthz_decision_log_dropped_total", reason="queue_full")
        assert all(l["decision"] == "ALLOW" for l in got)
    finally:
        os.close(reader)


def test_log_decisions_is_an_alias_of_decision_log_all(start_server):
    s = start_server(policies=POLICIES, args=DEFAULTS + ["--log-decisions"])
    s.check(CHECK_ALLOWED)
    wait_until(lambda: any(l.startswith('{"time":') and '"endpoint":"/v1/check"' in l for l in s.lines),
               "a JSON line on standard output")


def test_log_decisions_contradicting_decision_log_is_refused(binary, tmp_path):
    p = subprocess.run([binary, "serve", "--policies", tmp_path, "--log-decisions", "--decision-log", "deny"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "--log-decisions" in p.stderr


def test_unwritable_log_file_stops_serve(binary, tmp_path):
    harness.write_policies(tmp_path / "p", POLICIES)
    p = subprocess.run([binary, "serve", "--policies", tmp_path / "p", "--listen", "127.0.0.1:0",
                        "--decision-log", "all", "--decision-log-file", tmp_path / "no" / "such" / "dir.log"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot open the decision log" in p.stderr, p.stderr


def test_operator_metrics(binary, start_server):
    s = start_server(policies=POLICIES, args=DEFAULTS)
    s.get("/ext_authz/api/users", headers={"x-forwarded-client-cert": XFCC_FRONTEND})
    s.check(CHECK_DENIED)
    m = metrics(s)
    assert m[("meshauthz_decisions_total", (("decision", "allow"), ("endpoint", "/ext_authz"), ("stage", "allow-policy")))] == 1
    assert m[("meshauthz_decisions_total", (("decision", "deny"), ("endpoint", "/v1/check"), ("stage", "default-deny")))] == 1
    assert m[("meshauthz_http_request_duration_seconds_count", (("endpoint", "/ext_authz"),))] == 1
    assert m[("meshauthz_http_request_duration_seconds_count", (("endpoint", "/v1/check"),))] == 1
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()[1]
    build = [dict(k[1]) for k in m if k[0] == "meshauthz_build_info"]
    assert len(build) == 1 and build[0]["version"] == version and build[0]["swift"]
    pid_fds = len(os.listdir(f"/proc/{s.pid}/fd"))
    assert abs(m[("process_open_fds", ())] - pid_fds) <= 4
    assert m[("process_resident_memory_bytes", ())] > 1 << 20
    assert m[("process_cpu_seconds_total", ())] > 0
    start = m[("process_start_time_seconds", ())]
    assert start <= time.time() and start > time.time() - 3600
    assert m[("process_max_fds", ())] >= 1024
    # no decision log: no decision log metrics
    assert not any(k[0].startswith("meshauthz_decision_log") for k in m)


def test_odd_request_ids_and_bytes_still_make_valid_lines(logged):
    s, path = logged("all")
    raw = (b"GET /ext_authz/api/users HTTP/1.1\r\nHost: h\xff\xfe.example\r\nx-request-id: a\"b\r\n"
           b"Connection: close\r\n\r\n")
    assert s.raw(raw).startswith(b"HTTP/1.1 403")
    s.get("/ext_authz/api/users", headers={"x-request-id": "x" * 129})
    s.get("/ext_authz/api/users", headers={"x-request-id": "ok-" + "y" * 125})
    wait_until(lambda: written(s) == 3, "3 lines written")
    text = path.read_bytes().decode("utf-8")  # valid UTF-8 throughout
    first, second, third = [json.loads(l) for l in text.splitlines()]
    assert first["host"] == "h\ufffd\ufffd.example"
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{16}", first["requestId"])
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]{16}", second["requestId"])
    assert third["requestId"] == "ok-" + "y" * 125
