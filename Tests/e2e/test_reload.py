"""Live reload: polling the policy directory (~1 s) and SIGHUP; a bad reload keeps the last good set."""
import os
import signal
import time

import yaml

from policy_sets import ALLOW_ALL, ALLOW_NOTHING, authz

REQ = {"source": {"ip": "10.0.0.5", "mtls": False},
       "destination": {"namespace": "default", "labels": {"app": "web"}, "port": 8080},
       "request": {"method": "GET", "path": "/"}}
SYNTAX_ERROR = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x, namespace: default\n"


def eventually(fn, timeout=8.0, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    return last


def decision(s):
    return s.check(REQ)["decision"]


def metric(s, name, **labels):
    from test_endpoints import sample, scrape
    return sample(scrape(s)[2], name, **labels)


def test_reload_on_file_change(start_server, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    f = d / "policies.yaml"
    f.write_text(yaml.safe_dump(ALLOW_NOTHING))
    s = start_server(policies_dir=d)
    assert decision(s) == "DENY"
    gen = s.readyz()["generation"]

    # a new valid content: the decision changes without a restart
    f.write_text(yaml.safe_dump(ALLOW_ALL) + "# now allow everything in default\n")
    assert eventually(lambda: decision(s) == "ALLOW"), s.log
    ready = s.readyz()
    assert ready["generation"] > gen
    assert ready.get("lastReloadError") is None
    assert metric(s, "meshauthz_policy_reloads_total", result="success") >= 1

    # a new file in the directory is picked up too
    (d / "deny.yaml").write_text(yaml.safe_dump(
        authz("deny-web", {"action": "DENY", "selector": {"matchLabels": {"app": "web"}}, "rules": [{}]})))
    assert eventually(lambda: decision(s) == "DENY"), s.log
    assert s.readyz()["policies"] == 2

    # and a removed one disappears
    (d / "deny.yaml").unlink()
    assert eventually(lambda: decision(s) == "ALLOW"), s.log
    assert s.readyz()["policies"] == 1


def test_bad_reload_keeps_the_last_good_set(start_server, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    f = d / "policies.yaml"
    f.write_text(yaml.safe_dump(ALLOW_ALL))
    s = start_server(policies_dir=d)
    assert decision(s) == "ALLOW"
    gen = s.readyz()["generation"]
    failures = metric(s, "meshauthz_policy_reloads_total", result="failure")

    (d / "broken.yaml").write_text(SYNTAX_ERROR)
    ready = eventually(lambda: (r := s.get("/readyz")).status_code == 200 and r.json().get("lastReloadError") and r.json())
    assert ready, f"/readyz never reported lastReloadError:\n{s.log}"
    assert "broken.yaml" in str(ready["lastReloadError"]), ready
    assert ready["status"] == "ready" and ready["generation"] == gen and ready["policies"] == 1
    assert decision(s) == "ALLOW", "the last good set must keep serving"
    assert s.get("/healthz").status_code == 200
    assert metric(s, "meshauthz_policy_reloads_total", result="failure") > failures
    assert "broken.yaml" in s.log

    # an invalid value (not just bad YAML) is refused the same way
    (d / "broken.yaml").write_text(yaml.safe_dump(authz("cidr", {"rules": [{"from": [{"source": {
        "ipBlocks": ["300.1.1.1/8"]}}]}]})))
    assert eventually(lambda: "300.1.1.1" in str(s.readyz().get("lastReloadError")) or
                      "ipBlocks" in str(s.readyz().get("lastReloadError"))), s.readyz()
    assert decision(s) == "ALLOW"

    # fixing the file clears the error and applies the new set
    (d / "broken.yaml").write_text(yaml.safe_dump(ALLOW_NOTHING) + "# fixed\n")
    assert eventually(lambda: s.readyz().get("lastReloadError") is None and decision(s) == "ALLOW"
                      and s.readyz()["generation"] > gen), s.readyz()
    assert s.readyz()["policies"] == 2


def test_sighup_reloads(start_server, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    f = d / "policies.yaml"
    f.write_text(yaml.safe_dump(ALLOW_NOTHING))
    s = start_server(policies_dir=d)
    assert decision(s) == "DENY"
    gen = s.readyz()["generation"]
    st = f.stat()
    # same size, same mtime: a poller comparing metadata cannot see it; SIGHUP must
    new = yaml.safe_dump(authz("allow-zothing", {}))
    assert len(new) == st.st_size
    f.write_text(new)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    s.send_signal(signal.SIGHUP)
    assert eventually(lambda: s.readyz()["generation"] > gen, timeout=5), s.log
    names = [p["name"] for p in s.get("/v1/policies").json()["policies"]]
    assert names == ["allow-zothing"], names
    assert s.proc.poll() is None, "SIGHUP must not stop the server"


def test_gateway_answers_follow_a_reload(start_server, tmp_path):
    """/ext_authz answers are built once per deciding rule and kept with the policy set: the same request
    gets the same answer every time, and a reload brings the new set's answers, not the old ones."""
    d = tmp_path / "p"
    d.mkdir()
    f = d / "policies.yaml"
    f.write_text(yaml.safe_dump(ALLOW_ALL))
    s = start_server(policies_dir=d, args=["--default-namespace", "default", "--default-workload", "app=web"])

    def gateway():
        r = s.get("/ext_authz/some/path")
        return r.status_code, r.headers.get("x-meshauthz-reason"), r.content

    first = gateway()
    assert first[0] == 200, first
    assert [gateway() for _ in range(5)] == [first] * 5

    f.write_text(yaml.safe_dump(ALLOW_NOTHING) + "# now nothing is allowed\n")
    assert eventually(lambda: gateway()[0] == 403), s.log
    denied = gateway()
    assert b'"allowed":false' in denied[2] and denied[1] != first[1]
    assert [gateway() for _ in range(5)] == [denied] * 5
