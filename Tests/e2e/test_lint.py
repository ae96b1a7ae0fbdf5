"""`meshauthz lint`: findings with code, severity, file:line:column, resource, message and fix, as text and
JSON; exit 0 below --fail-on, 1 at or above it, 2 for usage errors and unreadable paths."""
import json
import shutil
import subprocess

import harness

PROBLEMS = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: billing}
spec:
  mtls: {mode: STRICT}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: billing-plain, namespace: billing}
spec:
  host: billing-service.billing.svc.cluster.local
  trafficPolicy:
    tls: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: typo, namespace: core}
spec:
  selector: {matchLabels: {app: user-service}}
  rules:
  - from:
    - source:
        principles: [cluster.local/ns/edge/sa/gateway-sa]
"""


def run(binary, *args):
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=60)


def repo(tmp_path, problems=True):
    d = tmp_path / "repo"
    shutil.copytree(harness.ROOT / "policies", d / "policies")
    shutil.copytree(harness.ROOT / "examples" / "workloads", d / "workloads")
    if problems:
        (d / "policies" / "problems.yaml").write_text(PROBLEMS)
    return d


def test_findings_as_text_with_location_and_fix(binary, tmp_path):
    d = repo(tmp_path)
    p = run(binary, "lint", d / "policies", d / "workloads")
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    dr = next(l for l in lines if "[MA0102]" in l)
    assert dr.startswith(f"{d}/policies/problems.yaml:13:") and " error [MA0102] (DestinationRule billing/billing-plain) " in dr
    assert "503" in dr
    typo = next(l for l in lines if "[MA0002]" in l)
    assert typo.startswith(f"{d}/policies/problems.yaml:23:9: error [MA0002]") and 'did you mean "principals"' in typo
    assert lines[lines.index(typo) + 1].strip() == 'fix: write "principals"'
    assert lines[-1].startswith("2 errors,"), lines[-1]


def test_findings_as_json(binary, tmp_path):
    d = repo(tmp_path)
    p = run(binary, "lint", "--output", "json", d)
    assert p.returncode == 1, p.stderr
    findings = json.loads(p.stdout)
    assert {tuple(sorted(f)) for f in findings} == {("code", "column", "file", "fix", "line", "message", "resource", "severity")}
    codes = {f["code"]: f for f in findings}
    assert codes["MA0102"]["severity"] == "error" and codes["MA0102"]["line"] == 13
    assert codes["MA0102"]["file"] == f"{d}/policies/problems.yaml"
    assert codes["MA0202"]["severity"] == "info" and codes["MA0202"]["fix"] is None


def test_clean_repo_exits_0_and_fail_on_lowers_the_bar(binary, tmp_path):
    d = repo(tmp_path, problems=False)
    p = run(binary, "lint", d / "policies", d / "workloads")
    assert p.returncode == 0, p.stdout
    assert "[MA0202]" in p.stdout  # the allow-nothing policies: info
    assert run(binary, "lint", "--fail-on", "info", d / "policies").returncode == 1


def test_without_manifests_the_inventory_analyses_are_skipped_once(binary, tmp_path):
    d = repo(tmp_path, problems=False)
    p = run(binary, "lint", d / "policies")
    assert p.returncode == 0
    assert p.stdout.count("[MA0007]") == 1 and "MA0204" in p.stdout


def test_usage_errors_and_unreadable_paths_exit_2(binary, tmp_path):
    assert run(binary, "lint").returncode == 2
    assert run(binary, "lint", "--fail-on", "fatal", tmp_path).returncode == 2
    p = run(binary, "lint", tmp_path / "missing")
    assert p.returncode == 2 and "missing" in p.stderr
