"""`meshauthz generate`: policies/ is what policies/services.yaml generates, the output passes lint without a
warning, and a bad service list is refused with file, line and field."""
import shutil
import subprocess

import pytest

import harness

POLICIES = harness.ROOT / "policies"
WORKLOADS = harness.ROOT / "examples" / "workloads"


def run(binary, *args):
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=60)


def test_policies_dir_is_what_services_yaml_generates(binary, tmp_path):
    p = run(binary, "generate", "--services", POLICIES / "services.yaml", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    generated = {f.name: f.read_text() for f in tmp_path.iterdir()}
    committed = {f.name: f.read_text() for f in POLICIES.iterdir() if f.name != "services.yaml"}
    assert sorted(generated) == sorted(committed), "run `make policies`"
    for name, text in generated.items():
        assert committed[name] == text, f"policies/{name} differs from what services.yaml generates: run `make policies`"


def test_stdout_is_the_same_stream(binary, tmp_path):
    p = run(binary, "generate", "--services", POLICIES / "services.yaml")
    assert p.returncode == 0, p.stderr
    (tmp_path / "all.yaml").write_text(p.stdout)
    v = run(binary, "validate", "--policies", tmp_path)
    assert v.returncode == 0 and "13 AuthorizationPolicies, 1 PeerAuthentications" in v.stdout, v.stdout + v.stderr


@pytest.mark.parametrize("with_manifests", [False, True], ids=["policies-only", "with-manifests"])
def test_generated_set_passes_lint_without_a_warning(binary, tmp_path, with_manifests):
    assert run(binary, "generate", "--services", POLICIES / "services.yaml", "--out", tmp_path / "out").returncode == 0
    paths = [tmp_path / "out"] + ([WORKLOADS] if with_manifests else [])
    p = run(binary, "lint", "--fail-on", "warning", *paths)
    assert p.returncode == 0, p.stdout
    assert " 0 warnings" in p.stdout.splitlines()[-1] or p.stdout.splitlines()[-1].startswith("0 errors, 0 warnings")


BAD = [
    ("services:\n- name: a\n  namespace: x\n  serviceAccount: a-sa\n  port: 80\n  allowedCallers: [b]\n", 6, "allowedCallers", "not a service of the list"),
    ("services:\n- name: a\n  namespace: x\n  serviceAcount: a-sa\n  port: 80\n", 4, "services[0].serviceAcount", 'did you mean "serviceAccount"'),
    ("services:\n- name: a\n  namespace: x\n  serviceAccount: a-sa\n  port: http\n", 5, "services[0].port", "not a port number"),
    ("services:\n- name: a\n  namespace: istio-system\n  serviceAccount: a-sa\n  port: 80\n", 2, "namespace", "root namespace"),
    ("services:\n- name: a\n  namespace: x\n  serviceAccount: a-sa\n  port: 80\n  allowedCallers: [spiffe://cluster.local/ns/x/sa/b]\n", 6, "allowedCallers", "without spiffe://"),
]


@pytest.mark.parametrize("text,line,field,message", BAD, ids=["unknown-caller", "misspelled-field", "bad-port", "root-namespace", "spiffe"])
def test_bad_service_list_is_refused_with_location(binary, tmp_path, text, line, field, message):
    f = tmp_path / "services.yaml"
    f.write_text(text)
    p = run(binary, "generate", "--services", f, "--out", tmp_path / "out")
    assert p.returncode == 2, p.stderr
    assert f"{f}:{line}:" in p.stderr and f" {field}: " in p.stderr and message in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()
