"""Explain: `POST /v1/check?explain=true` and `meshauthz explain`, through the real server and CLI.

(Every fixture check is also explained through the server, both engines, in test_cases.py: the explained
decision is the served one.)
"""
import json
import re
import subprocess

import pytest

import harness
import openapi_check as oc
from policy_sets import CHECK_ALLOWED, CHECK_DENIED, GATEWAY_SET

MESH = harness.ROOT / "policies"
# The README's walk-through: batch-sa asks api-service, which only frontend-sa may call.
BATCH = {
    "source": {"principal": "cluster.local/ns/default/sa/batch-sa", "mtls": True},
    "destination": {"namespace": "default", "labels": {"app": "api-service"}, "port": 8080},
    "request": {"method": "GET", "path": "/api/users"},
}


def run(binary, *args, stdin=None):
    return subprocess.run([binary, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def policies(tmp_path):
    return harness.write_policies(tmp_path / "p", GATEWAY_SET).parent


def test_explain_true_adds_the_trace(mesh_server):
    r = mesh_server.post("/v1/check?explain=true", json=BATCH)
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["decision"] == "DENY" and a["stage"] == "default-deny"
    e = a["explain"]
    assert not oc.schema_errors(e, oc.component("Explanation"))
    assert e["peerAuthentication"] == {
        "mode": "STRICT", "decidedBy": "istio-system/default", "level": "mesh", "mtls": True, "passed": True,
        "reason": "mTLS mode STRICT (PeerAuthentication istio-system/default, mesh level); the connection is mTLS: accepted"}
    assert [p["policy"] for p in e["policies"]] == ["default/allow-nothing", "default/api-policy"]
    assert e["policies"][0]["rules"] == [] and e["policies"][0]["selectedBy"] == "namespace-wide"
    rule = e["policies"][1]["rules"][0]
    assert rule["ruleId"] == "ns[default]-policy[api-policy]-rule[0]" and rule["matched"] is False
    principals = rule["fields"][0]
    assert principals == {"field": "from[0].source.principals", "key": None, "negated": False, "matched": False,
                          "values": ["cluster.local/ns/default/sa/frontend-sa"],
                          "actual": "cluster.local/ns/default/sa/batch-sa"}
    assert e["closestMiss"] == ("rule ns[default]-policy[api-policy]-rule[0] would allow if source.principals "
                                "contained cluster.local/ns/default/sa/batch-sa")
    assert e["notApplicableCount"] == 12 and {n["cause"] for n in e["notApplicable"]} == {"namespace", "selector"}
    frontend = next(n for n in e["notApplicable"] if n["cause"] == "selector")
    assert frontend == {"policy": "default/frontend", "action": "ALLOW", "cause": "selector",
                        "reason": "selector labels not matched: app=frontend (workload: api-service)"}


@pytest.mark.parametrize("query,explained", [
    ("", False), ("?explain=false", False), ("?explain=true", True), ("?x=1&explain=true", True),
])
def test_explain_only_when_asked(mesh_server, query, explained):
    a = mesh_server.post("/v1/check" + query, json=BATCH).json()
    assert ("explain" in a) is explained


@pytest.mark.parametrize("query", ["?explain=yes", "?explain", "?explain=TRUE", "?explain=true&explain=true"])
def test_bad_explain_parameter_is_a_400(mesh_server, query):
    r = mesh_server.post("/v1/check" + query, json=BATCH)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "explain"


def test_batch_explains_each_answer(start_server, policies):
    s = start_server(policies_dir=policies)
    answers = s.post("/v1/check?explain=true", json=[CHECK_ALLOWED, CHECK_DENIED, {}]).json()
    assert [a["explain"]["decision"] for a in answers] == ["ALLOW", "DENY", "ALLOW"]
    # {} names no destination: nothing applies, and every policy says why not.
    assert answers[2]["explain"]["policies"] == [] and answers[2]["explain"]["notApplicableCount"] == 3
    # the AUDIT policy is listed last, after the DENY and ALLOW ones
    assert [p["action"] for p in answers[0]["explain"]["policies"]] == ["DENY", "ALLOW", "AUDIT"]


def test_not_ready_answers_without_a_trace(start_server, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.yaml").write_text("kind: [\n")
    s = start_server(policies_dir=tmp_path / "bad", wait_ready=False)
    a = s.post("/v1/check?explain=true", json=CHECK_ALLOWED).json()
    assert a["stage"] == "not-ready" and "explain" not in a


def test_cli_text_is_the_readme_walkthrough(binary):
    """The README's walk-through shows this very output: it cannot drift from the program."""
    p = run(binary, "explain", "--policies", MESH, stdin=json.dumps(BATCH))
    assert p.returncode == 1, p.stderr
    readme = (harness.ROOT / "README.md").read_text()
    section = readme[readme.index("## Why was I denied?"):]
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    assert p.stdout == shown
    assert p.stdout.splitlines()[-1].startswith("closest miss: rule ns[default]-policy[api-policy]-rule[0] would allow if")


def test_cli_json_is_the_servers_answer(binary, mesh_server):
    p = run(binary, "explain", "--policies", MESH, "--output", "json", stdin=json.dumps(BATCH))
    assert p.returncode == 1, p.stderr
    cli = json.loads(p.stdout)
    served = mesh_server.post("/v1/check?explain=true", json=BATCH).json()
    # the file positions are relative to the directory in both
    assert cli == served


@pytest.mark.parametrize("engine", ["reference", "compiled"])
def test_cli_allow_exits_0(binary, policies, engine):
    p = run(binary, "explain", "--policies", policies, "--engine", engine, stdin=json.dumps(CHECK_ALLOWED))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ALLOW (allow-policy): allowed by ALLOW rule ns[default]-policy[api-policy]-rule[0]\n")
    assert "  ✔ ns[default]-policy[api-policy]-rule[0]\n" in p.stdout
    assert "closest miss" not in p.stdout


def test_cli_plaintext_under_strict(binary):
    body = dict(BATCH, source={"ip": "10.0.0.5", "mtls": False})
    p = run(binary, "explain", "--policies", MESH, stdin=json.dumps(body))
    assert p.returncode == 1
    assert p.stdout.splitlines()[1].startswith("✘ peer authentication: mTLS mode STRICT")
    assert p.stdout.splitlines()[-1].startswith("closest miss: the request would get past peer authentication over mTLS")


@pytest.mark.parametrize("stdin,why", [
    ("{oops", "bad request"),
    (json.dumps([BATCH]), "explains one request"),
    (json.dumps({"source": {"ip": "1.2.3"}}), "source.ip"),
], ids=["bad-json", "array", "bad-ip"])
def test_cli_bad_input_exits_2(binary, stdin, why):
    p = run(binary, "explain", "--policies", MESH, stdin=stdin)
    assert p.returncode == 2 and why in p.stderr, (p.returncode, p.stderr)


def test_cli_bad_policies_exit_2(binary, tmp_path):
    (tmp_path / "x.yaml").write_text("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {action: NOPE}\n")
    p = run(binary, "explain", "--policies", tmp_path, stdin=json.dumps(BATCH))
    assert p.returncode == 2 and "x.yaml:4" in p.stderr, p.stderr


def test_version(binary):
    p = run(binary, "--version")
    assert p.returncode == 0 and re.fullmatch(r"meshauthz \S+ \(swift [0-9.+]+\)\n", p.stdout), p.stdout


def test_no_explain_refuses_traces(start_server, policies):
    s = start_server(policies_dir=policies, args=["--no-explain"])
    r = s.post("/v1/check?explain=true", json=CHECK_DENIED)
    assert r.status_code == 403 and r.json()["error"]["code"] == "explain_disabled"
    assert s.post("/v1/check", json=CHECK_DENIED).json()["decision"] == "DENY"


def test_explained_batches_are_bounded(mesh_server):
    assert mesh_server.post("/v1/check?explain=true", json=[BATCH] * 100).status_code == 200
    r = mesh_server.post("/v1/check?explain=true", json=[BATCH] * 101)
    assert r.status_code == 400 and "at most 100" in r.json()["error"]["message"]
