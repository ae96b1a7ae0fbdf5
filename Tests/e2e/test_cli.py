"""`meshauthz check`: exit 0 allow, 1 deny, 2 bad input or bad policies."""
import json
import re
import subprocess

import pytest

import harness
from policy_sets import CHECK_ALLOWED, CHECK_DENIED, GATEWAY_SET


@pytest.fixture
def policies(tmp_path):
    return harness.write_policies(tmp_path / "p", GATEWAY_SET).parent


def run(binary, *args, stdin=None):
    return subprocess.run([binary, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60)


def test_check_allow_from_stdin(binary, policies):
    p = run(binary, "check", "--policies", policies, stdin=json.dumps(CHECK_ALLOWED))
    assert p.returncode == 0, p.stderr
    a = json.loads(p.stdout)
    assert a["decision"] == "ALLOW" and a["allowed"] is True
    assert a["ruleId"] == "ns[default]-policy[api-policy]-rule[0]"


def test_check_deny_from_file(binary, policies, tmp_path):
    f = tmp_path / "req.json"
    f.write_text(json.dumps(CHECK_DENIED))
    p = run(binary, "check", "--policies", policies, "--request", f)
    assert p.returncode == 1, p.stderr
    a = json.loads(p.stdout)
    assert a["decision"] == "DENY" and a["allowed"] is False and a["stage"] == "default-deny"


def test_check_same_answer_as_the_server(binary, policies, start_server):
    s = start_server(policies_dir=policies)
    for body in (CHECK_ALLOWED, CHECK_DENIED, {}):
        p = run(binary, "check", "--policies", policies, stdin=json.dumps(body))
        assert json.loads(p.stdout) == s.check(body)


@pytest.mark.parametrize("stdin,field", [
    ("{not json", None),
    ("", None),
    (json.dumps({"source": {"ip": "999.1.1.1"}}), "source.ip"),
    (json.dumps({"destination": {"port": 65536}}), "destination.port"),
    (json.dumps({"sources": {}}), "sources"),
], ids=["bad-json", "empty", "bad-ip", "bad-port", "unknown-key"])
def test_check_bad_input_exits_2(binary, policies, stdin, field):
    p = run(binary, "check", "--policies", policies, stdin=stdin)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip()
    if field:
        assert field in p.stderr


def test_check_missing_request_file_exits_2(binary, policies, tmp_path):
    p = run(binary, "check", "--policies", policies, "--request", tmp_path / "nope.json")
    assert p.returncode == 2 and p.stderr.strip()


def test_check_bad_policies_exit_2_with_location(binary, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "bad.yaml").write_text(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: default}\n"
        "spec:\n  rules:\n  - to:\n    - operation: {paths: [\"/a/{*}b\"]}\n")
    p = run(binary, "check", "--policies", d, stdin=json.dumps(CHECK_ALLOWED))
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert re.search(r"bad\.yaml:7:\d+: [^:]*paths", p.stderr), p.stderr


def test_check_missing_policy_dir_exits_2(binary, tmp_path):
    p = run(binary, "check", "--policies", tmp_path / "none", stdin="{}")
    assert p.returncode == 2 and p.stderr.strip()


def test_help_lists_the_commands(binary):
    p = run(binary, "--help")
    assert p.returncode == 0
    for cmd in ("serve", "check", "validate"):
        assert cmd in p.stdout
    p = run(binary, "serve", "--help")
    assert p.returncode == 0
    for flag in ("--policies", "--listen", "--root-namespace", "--trust-domain", "--default-namespace",
                 "--default-workload"):
        assert flag in p.stdout, flag


def test_check_normalizes_like_the_server(binary, policies, start_server):
    """Issue 7 #4: the offline check judges the path the sidecar sees, under the same --path-normalization."""
    body = dict(CHECK_ALLOWED)
    body["request"] = dict(body["request"], path="/api/users/../admin/x")
    p = run(binary, "check", "--policies", policies, stdin=json.dumps(body))
    a = json.loads(p.stdout)
    assert a["normalizedPath"] == "/api/admin/x" and a["decision"] == "DENY", a
    assert a == start_server(policies_dir=policies).check(body)
    body["request"]["path"] = "/api/users/..%2fadmin"
    for mode, normalized in (("base", None), ("decode-and-merge-slashes", "/api/admin")):
        p = run(binary, "check", "--policies", policies, "--path-normalization", mode, stdin=json.dumps(body))
        assert json.loads(p.stdout).get("normalizedPath") == normalized, p.stdout


def test_check_refuses_a_method_envoy_would_refuse(binary, policies):
    body = dict(CHECK_ALLOWED)
    body["request"] = dict(body["request"], method="get")
    p = run(binary, "check", "--policies", policies, stdin=json.dumps(body))
    assert p.returncode == 2 and "request.method" in p.stderr, p.stderr


@pytest.mark.parametrize("args,listed", [
    (["serve", "--engine", "fast"], "compiled"),
    (["serve", "--log-level", "loud"], "warning"),
    (["serve", "--gateway", "nginxx"], "traefik"),
    (["serve", "--path-normalization", "decode"], "decode-and-merge-slashes"),
    (["check", "--engine", "x"], "reference"),
])
def test_enumerated_flags_refuse_other_values(binary, args, listed):
    p = run(binary, *args, stdin="{}")
    assert p.returncode == 64 and listed in p.stderr, (p.returncode, p.stderr)
