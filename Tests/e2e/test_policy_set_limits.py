"""Issue 7, through real `meshauthz serve` / `validate` / `check` processes: an empty set is refused unless
`--allow-empty`, every `.yaml`/`.yml`/`.json` file is read and near-miss kinds are errors, a half-written
file is never served, and a billion-laughs file is refused quickly while the server keeps answering."""
import json
import signal
import subprocess
import threading
import time

import yaml

from policy_sets import ALLOW_ALL, ALLOW_NOTHING, authz
from test_endpoints import sample, scrape
from test_reload import REQ, decision, eventually


def run(binary, *args, stdin=None):
    return subprocess.run([binary, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60)


def metric(s, name, **labels):
    return sample(scrape(s)[2], name, **labels)


def reload_error(s):
    r = s.get("/readyz")
    return r.status_code == 200 and r.json().get("lastReloadError")


# -- item 6: an empty set is refused unless intended -----------------------------------------------------------
def empty_dirs(tmp_path):
    """(id, directory) pairs that all hold no AuthorizationPolicy and no PeerAuthentication."""
    empty = tmp_path / "empty"
    empty.mkdir()
    comment = tmp_path / "comment"
    comment.mkdir()
    (comment / "policies.yaml").write_text("# nothing yet\n")
    others = tmp_path / "others"
    others.mkdir()
    (others / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n")
    return [("empty", empty), ("comment-only", comment), ("other-kinds-only", others),
            ("missing", tmp_path / "not-mounted")]


def test_an_empty_set_at_start_up_is_not_ready_and_denies(start_server, tmp_path):
    for name, d in empty_dirs(tmp_path):
        s = start_server(policies_dir=d, wait_ready=False)
        # (a tuple: a 503 response is falsy)
        r, = eventually(lambda: (x := s.get("/readyz")).json().get("error", {}).get("errors") and (x,))
        assert r.status_code == 503, (name, r.text)
        body = r.json()
        assert body["status"] == "not ready", (name, body)
        answer = s.check(REQ)
        assert answer["decision"] == "DENY" and answer["stage"] == "not-ready", (name, answer)
        if name != "missing":  # a missing directory keeps its own "cannot read" error
            assert body["error"]["code"] == "empty_set", (name, body)
            assert "--allow-empty" in body["error"]["message"], (name, body)
        assert s.get("/ext_authz/x", headers={"x-authz-namespace": "default"}).status_code == 403, name
        s.stop()


def test_allow_empty_serves_the_empty_set(start_server, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    s = start_server(policies_dir=d, args=["--allow-empty"])
    ready = s.readyz()
    assert ready["status"] == "ready" and ready["policies"] == 0 and ready["peerAuthentications"] == 0, ready
    assert decision(s) == "ALLOW"


def test_emptying_the_directory_keeps_the_last_good_set(start_server, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    f = d / "policies.yaml"
    f.write_text(yaml.safe_dump(ALLOW_NOTHING))
    s = start_server(policies_dir=d, args=["--reload-interval", "0.1"])
    assert decision(s) == "DENY"
    gen = s.readyz()["generation"]
    failures = metric(s, "meshauthz_policy_reloads_total", result="failure")

    f.unlink()
    ready = eventually(lambda: reload_error(s) and s.readyz())
    assert ready, f"/readyz never reported lastReloadError:\n{s.log}"
    assert ready["lastReloadError"]["code"] == "empty_set", ready
    assert ready["status"] == "ready" and ready["generation"] == gen and ready["policies"] == 1, ready
    assert decision(s) == "DENY", "the emptied directory must not open the mesh"
    assert metric(s, "meshauthz_policy_reloads_total", result="failure") > failures

    # a ConfigMap alone is no better than nothing
    (d / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n")
    assert eventually(lambda: metric(s, "meshauthz_policy_reloads_total", result="failure") > failures + 1), s.log
    assert decision(s) == "DENY" and s.readyz()["generation"] == gen


def test_validate_and_check_refuse_an_empty_set(binary, tmp_path):
    for name, d in empty_dirs(tmp_path):
        p = run(binary, "validate", "--policies", d)
        assert p.returncode == 2, (name, p.stdout, p.stderr)
        if name != "missing":
            assert "empty policy set" in p.stderr and "--allow-empty" in p.stderr, (name, p.stderr)
        c = run(binary, "check", "--policies", d, stdin=json.dumps(REQ))
        assert c.returncode == 2 and c.stdout == "", (name, c.stdout, c.stderr)
        if name != "missing":
            assert run(binary, "validate", "--policies", d, "--allow-empty").returncode == 0, name
            allowed = run(binary, "check", "--policies", d, "--allow-empty", stdin=json.dumps(REQ))
            assert allowed.returncode == 0 and json.loads(allowed.stdout)["decision"] == "ALLOW", (name, allowed)


# -- item 7: every policy file is read, near misses are errors, other kinds are counted -------------------------
DENY_WEB = authz("deny-web", {"action": "DENY", "selector": {"matchLabels": {"app": "web"}}, "rules": [{}]})


def test_upper_case_and_json_files_are_read(start_server, tmp_path, binary):
    for name, text in (("deny.YAML", yaml.safe_dump(DENY_WEB)), ("deny.json", json.dumps(DENY_WEB, indent=1)),
                       ("deny.Yml", yaml.safe_dump(DENY_WEB))):
        d = tmp_path / name.replace(".", "_")
        d.mkdir()
        (d / "allow.yaml").write_text(yaml.safe_dump(ALLOW_ALL))
        (d / name).write_text(text)
        s = start_server(policies_dir=d)
        assert decision(s) == "DENY", (name, s.get("/v1/policies").json())
        assert s.readyz()["policies"] == 2
        s.stop()
        out = run(binary, "validate", "--policies", d)
        assert out.returncode == 0 and "2 AuthorizationPolicies" in out.stdout, (name, out)


NEAR_MISSES = {
    "kind-typo": ("security.istio.io/v1", "AuthorisationPolicy", 3, "kind", "did you mean AuthorizationPolicy"),
    "wrong-group": ("networking.istio.io/v1", "AuthorizationPolicy", 2, "apiVersion", "did you mean security.istio.io/v1"),
    "group-typo": ("securty.istio.io/v1", "PeerAuthentication", 2, "apiVersion", "did you mean security.istio.io"),
    "peer-kind-typo": ("security.istio.io/v1", "PeerAuthenticaton", 3, "kind", "did you mean PeerAuthentication"),
}


def test_near_miss_kinds_are_errors_naming_file_and_line(binary, tmp_path):
    for name, (api, kind, line, field, meant) in NEAR_MISSES.items():
        d = tmp_path / name
        d.mkdir()
        (d / "allow.yaml").write_text(yaml.safe_dump(ALLOW_ALL))
        (d / "deny.yaml").write_text(f"# {name}\napiVersion: {api}\nkind: {kind}\nmetadata: {{name: deny-web}}\n"
                                     "spec: {action: DENY, rules: [{}]}\n")
        p = run(binary, "validate", "--policies", d)
        assert p.returncode == 2, (name, p.stdout, p.stderr)
        assert f"deny.yaml:{line}:" in p.stderr and f": {field}: " in p.stderr and meant in p.stderr, (name, p.stderr)


def test_other_kinds_are_listed_by_kind(start_server, tmp_path, binary):
    d = tmp_path / "p"
    d.mkdir()
    (d / "allow.yaml").write_text(yaml.safe_dump(ALLOW_ALL))
    (d / "cms.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
                                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    (d / "dr.json").write_text(json.dumps({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                                           "metadata": {"name": "dr"}}))
    p = run(binary, "validate", "--policies", d)
    assert p.returncode == 0 and "ConfigMap: 2" in p.stdout and "DestinationRule: 1" in p.stdout, p
    s = start_server(policies_dir=d)
    assert s.readyz()["otherResources"] == {"ConfigMap": 2, "DestinationRule": 1}
    assert metric(s, "meshauthz_other_resources", kind="ConfigMap") == 2
    assert metric(s, "meshauthz_other_resources", kind="DestinationRule") == 1


# -- item 8: a file caught half-written is never served --------------------------------------------------------
def test_a_half_written_file_is_never_served(start_server, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    (d / "base.yaml").write_text(yaml.safe_dump(ALLOW_NOTHING))
    # polling every 50 ms, settling for 1 s: the writer's 300 ms pause is well inside the settle time
    s = start_server(policies_dir=d, args=["--reload-interval", "0.05", "--reload-settle", "1.0"])
    first = yaml.safe_dump(authz("first-half", {"rules": [{}]}, namespace="halves"))
    second = yaml.safe_dump(authz("second-half", {"rules": [{}]}, namespace="halves"))
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            names = frozenset(p["name"] for p in s.get("/v1/policies").json()["policies"])
            if not seen or seen[-1] != names:
                seen.append(names)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for _ in range(3):
            with open(d / "halves.yaml", "w") as f:
                f.write(first + "---\n")
                f.flush()
                time.sleep(0.3)
                f.write(second)
            assert eventually(lambda: {"first-half", "second-half"} <= seen[-1], timeout=10), (seen, s.log)
            (d / "halves.yaml").unlink()
            assert eventually(lambda: "first-half" not in seen[-1], timeout=10), (seen, s.log)
    finally:
        stop.set()
        watcher.join(5)
    halves = [names for names in seen if "first-half" in names and "second-half" not in names]
    assert not halves, f"a half-written file was served: {seen}"


# -- item 9: bounded alias expansion ---------------------------------------------------------------------------
def billion_laughs(levels=9):
    lines = ["apiVersion: security.istio.io/v1", "kind: AuthorizationPolicy",
             "metadata: {name: lol, namespace: default}", "spec:", "  selector:", "    matchLabels:",
             '      l0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"      l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    lines += ["  rules:", f"  - from: *a{levels - 1}", f"    to: [{{? *a{levels - 1} : x}}]"]
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_and_the_server_stays_responsive(start_server, tmp_path, binary):
    text = billion_laughs()
    assert len(text) < 4096
    d = tmp_path / "p"
    d.mkdir()
    (d / "base.yaml").write_text(yaml.safe_dump(ALLOW_ALL))
    s = start_server(policies_dir=d, args=["--reload-interval", "0.1"])
    gen = s.readyz()["generation"]
    (d / "lol.yaml").write_text(text)
    ready = eventually(lambda: reload_error(s) and s.readyz(), timeout=15)
    assert ready, s.log
    err = ready["lastReloadError"]
    assert err["code"] == "limit_exceeded" and err["file"] == "lol.yaml" and "aliases" in err["message"], err
    assert ready["generation"] == gen
    assert decision(s) == "ALLOW" and s.get("/healthz").status_code == 200
    started = time.monotonic()
    assert s.stop(signal.SIGTERM, timeout=10) == 0, s.log
    assert time.monotonic() - started < 10

    p = run(binary, "validate", "--policies", d)
    assert p.returncode == 2 and "lol.yaml:" in p.stderr and "aliases" in p.stderr, p.stderr


def test_a_file_over_the_size_limit_is_refused(binary, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    (d / "allow.yaml").write_text(yaml.safe_dump(ALLOW_ALL))
    (d / "big.yaml").write_text(yaml.safe_dump(ALLOW_NOTHING) + "#" * 5000 + "\n")
    p = run(binary, "validate", "--policies", d, "--max-policy-file-bytes", "4096")
    assert p.returncode == 2 and "big.yaml:1:1:" in p.stderr and "--max-policy-file-bytes" in p.stderr, p.stderr
    assert run(binary, "validate", "--policies", d).returncode == 0
