"""`serve`, `check` and `validate` load only the kinds they decide with: a GitOps directory that also holds
workload manifests (examples/workloads) and more DestinationRules loads, decides as without them, and counts them."""
import json
import shutil
import subprocess

import harness

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: billing-service, namespace: billing}
spec:
  host: billing-service.billing.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
"""

ALLOWED = {"source": {"principal": "cluster.local/ns/edge/sa/gateway-sa", "mtls": True},
           "destination": {"namespace": "billing", "labels": {"app": "billing-service"}}}
DENIED = {"source": {"principal": "cluster.local/ns/core/sa/user-sa", "mtls": True},
          "destination": {"namespace": "billing", "labels": {"app": "billing-service"}}}


def repo(tmp_path):
    d = tmp_path / "repo"
    shutil.copytree(harness.ROOT / "policies", d / "policies")
    shutil.copytree(harness.ROOT / "examples" / "workloads", d / "workloads")
    (d / "destination-rules.yaml").write_text(DR)
    return d


def run(binary, *args, stdin=None):
    return subprocess.run([binary, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=60)


def test_validate_counts_manifests(binary, tmp_path):
    p = run(binary, "validate", "--policies", repo(tmp_path))
    assert p.returncode == 0, p.stderr
    assert "DestinationRule: 9" in p.stdout and "Deployment: 8" in p.stdout and "Service: 8" in p.stdout, p.stdout


def test_check_decides_as_without_manifests(binary, tmp_path):
    d = repo(tmp_path)
    for body, code in ((ALLOWED, 0), (DENIED, 1)):
        with_manifests = run(binary, "check", "--policies", d, stdin=json.dumps(body))
        alone = run(binary, "check", "--policies", d / "policies", stdin=json.dumps(body))
        assert with_manifests.returncode == alone.returncode == code, with_manifests.stderr
        assert json.loads(with_manifests.stdout) == json.loads(alone.stdout)


def test_serve_is_ready_and_counts_manifests(start_server, tmp_path):
    s = start_server(policies_dir=repo(tmp_path))
    ready = s.readyz()
    assert ready["status"] == "ready"
    assert ready["otherResources"]["DestinationRule"] == 9 and ready["otherResources"]["Deployment"] == 8
    assert s.check(ALLOWED)["decision"] == "ALLOW"
    assert s.check(DENIED)["decision"] == "DENY"
