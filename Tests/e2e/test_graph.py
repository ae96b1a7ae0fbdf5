"""`meshauthz graph` (dot, json, mermaid, html; reachability with witnesses) and `GET /v1/graph` on serve."""
import json
import shutil
import subprocess
import time

import pytest

import harness

POLICIES = harness.ROOT / "policies"
WORKLOADS = harness.ROOT / "examples" / "workloads"
SERVICES = ["api-gateway", "auth-service", "user-service", "billing-service", "order-service", "notification-service"]
# (caller, callee) of the SaaS, as README's table says.
SAAS_EDGES = {("api-gateway", "auth-service"), ("api-gateway", "user-service"), ("auth-service", "user-service"),
              ("api-gateway", "billing-service"), ("order-service", "billing-service"), ("api-gateway", "order-service"),
              ("billing-service", "order-service"), ("order-service", "notification-service"),
              ("billing-service", "notification-service")}


def run(binary, *args):
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=60)


def workload_edges(graph):
    labels = {n["id"]: n["label"] for n in graph["nodes"]}
    return {(labels[e["from"]], labels[e["to"]]) for e in graph["edges"]
            if e["from"].startswith("workload:") and e["to"].startswith("workload:")}


def test_json_has_the_example_mesh(binary):
    p = run(binary, "graph", "--format", "json", POLICIES, WORKLOADS)
    assert p.returncode == 0, p.stderr
    graph = json.loads(p.stdout)
    assert {n["label"] for n in graph["nodes"] if n["kind"] == "workload"} >= set(SERVICES)
    edges = workload_edges(graph)
    assert SAAS_EDGES <= edges and ("frontend", "api-service") in edges
    assert len(edges) == len(SAAS_EDGES) + 1, edges - SAAS_EDGES
    assert all(e["confirmed"] and e["witness"] for e in graph["edges"])
    api = next(e for e in graph["edges"] if e["to"] == "workload:default/api-service")
    assert api["methods"] == ["GET", "POST"] and api["paths"] == ["/api/*"] and api["label"] == "GET,POST /api/*"
    assert api["rules"] == ["ns[default]-policy[api-policy]-rule[0]"]


def test_witnesses_are_allowed_by_check(binary, tmp_path):
    graph = json.loads(run(binary, "graph", "--format", "json", POLICIES, WORKLOADS).stdout)
    for edge in graph["edges"][:4]:
        p = subprocess.run([binary, "check", "--policies", POLICIES], input=json.dumps(edge["witness"]),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (edge, p.stdout)


@pytest.mark.parametrize("fmt,marker", [("dot", "digraph meshauthz {"), ("mermaid", "flowchart LR"), ("html", "<!DOCTYPE html>")])
def test_other_formats(binary, fmt, marker):
    p = run(binary, "graph", "--format", fmt, POLICIES, WORKLOADS)
    assert p.returncode == 0 and p.stdout.startswith(marker), p.stderr
    assert "billing-service" in p.stdout


def test_html_is_self_contained(binary):
    page = run(binary, "graph", "--format", "html", POLICIES).stdout
    for external in ("<link", "src=", "@import", "url(http", "https://"):
        assert external not in page


def test_reachability_isolated_exits_0(binary):
    p = run(binary, "graph", POLICIES, WORKLOADS, "--from", "core/user-sa", "--to", "billing")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("ISOLATED: no request from core/user-sa can be allowed to billing")


def test_reachability_with_witness_exits_1(binary):
    p = run(binary, "graph", POLICIES, WORKLOADS, "--from", "edge/gateway-sa", "--to", "billing/billing-service")
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("REACHABLE: edge/gateway-sa can reach billing/billing-service")
    assert "allowed by ns[billing]-policy[billing-service]-rule[0]" in p.stdout
    witness = json.loads(next(l for l in lines if l.startswith("{")))
    assert witness["source"]["principal"] == "spiffe://cluster.local/ns/edge/sa/gateway-sa"
    c = subprocess.run([binary, "check", "--policies", POLICIES], input=json.dumps(witness), capture_output=True, text=True, timeout=60)
    assert c.returncode == 0 and json.loads(c.stdout)["ruleId"] == "ns[billing]-policy[billing-service]-rule[0]"


def test_reachability_without_manifests(binary):
    assert run(binary, "graph", POLICIES, "--from", "core/user-sa", "--to", "billing").returncode == 0
    assert run(binary, "graph", POLICIES, "--from", "edge", "--to", "billing/billing-service").returncode == 1


@pytest.mark.parametrize("args", [["--from", "core"], ["--from", "a/b/c", "--to", "x"], []], ids=["from-alone", "bad-from", "no-path"])
def test_usage_errors_exit_2(binary, args):
    assert run(binary, "graph", *([POLICIES] if args else []), *args).returncode == 2


def test_unknown_workload_and_bad_policies_exit_2(binary, tmp_path):
    p = run(binary, "graph", POLICIES, WORKLOADS, "--from", "core", "--to", "billing/nope")
    assert p.returncode == 2 and "no workload billing/nope" in p.stderr
    shutil.copytree(POLICIES, tmp_path / "p")
    (tmp_path / "p" / "bad.yaml").write_text("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: x}\nspec: {rulez: []}\n")
    p = run(binary, "graph", tmp_path / "p")
    assert p.returncode == 2 and "bad.yaml:4:" in p.stderr


@pytest.fixture
def mesh_with_manifests(start_server, tmp_path):
    d = tmp_path / "repo"
    shutil.copytree(POLICIES, d / "policies")
    shutil.copytree(WORKLOADS, d / "workloads")
    return start_server(policies_dir=d)


def test_v1_graph_formats(mesh_with_manifests):
    s = mesh_with_manifests
    r = s.get("/v1/graph?format=json")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert SAAS_EDGES <= workload_edges(r.json())
    r = s.get("/v1/graph")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8" and "billing-service" in r.text
    r = s.get("/v1/graph?format=dot")
    assert r.status_code == 200 and r.text.startswith("digraph")
    assert s.get("/v1/graph?format=svg").status_code == 400
    assert s.post("/v1/graph", data="{}").status_code == 405


def test_v1_graph_without_manifests(mesh_server):
    graph = mesh_server.get("/v1/graph?format=json").json()
    callers = {(e["from"], e["to"]) for e in graph["edges"]}
    assert ("principal:cluster.local/ns/edge/sa/gateway-sa", "workload:billing/app=billing-service") in callers


def test_v1_graph_not_ready(start_server, tmp_path):
    (tmp_path / "empty").mkdir()
    s = start_server(policies_dir=tmp_path / "empty", wait_ready=False)
    s.wait_for("/healthz")
    r = s.get("/v1/graph")
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_v1_graph_follows_a_reload(start_server, tmp_path):
    """The graph is built once per loaded set: a reload gives the new set's graph, not the cached one."""
    d = tmp_path / "p"
    shutil.copytree(POLICIES, d)
    s = start_server(policies_dir=d, args=["--reload-interval", "0.1", "--reload-settle", "0"])
    before = s.get("/v1/graph?format=json").json()
    assert s.get("/v1/graph?format=json").json() == before
    generation = s.readyz()["generation"]
    extra = ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: audit-caller, namespace: billing}\n"
             "spec:\n  selector: {matchLabels: {app: billing-service}}\n  rules:\n"
             "  - from: [{source: {principals: [cluster.local/ns/audit/sa/auditor]}}]\n")
    (d / "zz-audit.yaml").write_text(extra)
    for _ in range(100):  # bounded: 100 x 0.1 s
        if s.readyz()["generation"] > generation:
            break
        time.sleep(0.1)
    assert s.readyz()["generation"] > generation, s.log
    after = s.get("/v1/graph?format=json").json()
    assert any(e["from"] == "principal:cluster.local/ns/audit/sa/auditor" for e in after["edges"])
    assert not any(e["from"] == "principal:cluster.local/ns/audit/sa/auditor" for e in before["edges"])
