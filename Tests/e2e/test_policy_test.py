"""`meshauthz test`: policy test files through the real CLI; JUnit reports validated against junit-10.xsd."""
import json
import subprocess
import xml.etree.ElementTree as ET

import pytest
import xmlschema
import yaml

import harness
from policy_sets import API_POLICY, FRONTEND

XSD = xmlschema.XMLSchema(str(harness.ROOT / "Tests" / "e2e" / "junit-10.xsd"))
CASE_DIRS = [harness.FIXTURES / d for d in harness.CASE_DIRS]


def run(binary, *args):
    return subprocess.run([binary, "test", *map(str, args)], capture_output=True, text=True, timeout=120)


def junit(path):
    """The report, validated against the schema first."""
    XSD.validate(str(path))
    return ET.parse(path).getroot()


ALLOWED = {"source": {"principal": FRONTEND, "mtls": True},
           "destination": {"namespace": "default", "labels": {"app": "api-service"}},
           "request": {"method": "GET", "path": "/api/users"}}
BATCH = dict(ALLOWED, source={"principal": "cluster.local/ns/default/sa/batch-sa", "mtls": True})


def write_test_file(tmp_path, checks, policies=(API_POLICY,), name="t.yaml", **top):
    body = dict(top)
    if policies is not None:
        body["policies"] = list(policies)
    body["checks"] = checks
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_the_projects_fixtures_pass(binary, tmp_path, engine):
    """Every check of Tests/fixtures (the conformance, oracle, local and Istio integration cases) through the runner."""
    report = tmp_path / "junit.xml"
    p = run(binary, *CASE_DIRS, "--engine", engine, "--junit", report)
    total = sum(len(harness.load_case(f)["checks"]) for f in harness.case_files())
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    assert total >= 1200
    assert p.stdout.splitlines()[-1] == f"{total} passed, 0 failed"
    root = junit(report)
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == total == int(root.get("tests"))
    assert len(root.findall("./testsuite")) == len(harness.case_files())
    assert root.get("failures") == "0" and root.get("errors") == "0"


def test_a_failure_is_explained(binary, tmp_path):
    path = write_test_file(tmp_path, [
        {"name": "frontend may GET", **ALLOWED, "expect": "ALLOW", "expectRuleId": "ns[default]-policy[api-policy]-rule[0]"},
        {"name": "batch may GET", **BATCH, "expect": "ALLOW"},
        {"name": "wrong stage", **BATCH, "expect": "DENY", "expectStage": "deny-policy"},
    ])
    report = tmp_path / "junit.xml"
    p = run(binary, path, "--junit", report)
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout
    line = yaml.compose(path.read_text()).value[1][1].value[1].start_mark.line + 1
    assert f"FAIL  {path}:{line} #1 batch may GET\n" in out
    assert "    expected ALLOW, got DENY (default-deny: " in out
    assert "    |       ✘ from[0].source.principals: [cluster.local/ns/default/sa/frontend-sa], request: cluster.local/ns/default/sa/batch-sa" in out
    assert ("    | closest miss: rule ns[default]-policy[api-policy]-rule[0] would allow if source.principals contained "
            "cluster.local/ns/default/sa/batch-sa") in out
    assert "    expected stage deny-policy, got default-deny" in out
    assert out.splitlines()[-1] == "1 passed, 2 failed"
    root = junit(report)
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["#0 frontend may GET", "#1 batch may GET", "#2 wrong stage"]
    assert {c.get("classname") for c in cases} == {str(path)}
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure.get("message").startswith("expected ALLOW, got DENY")
    assert "closest miss: rule ns[default]-policy[api-policy]-rule[0] would allow" in failure.text
    assert root.get("tests") == "3" and root.get("failures") == "2"


def test_json_output(binary, tmp_path):
    path = write_test_file(tmp_path, [{**ALLOWED, "expect": "ALLOW"}, {**BATCH, "expect": "ALLOW"}])
    p = run(binary, path, "--output", "json")
    assert p.returncode == 1
    report = json.loads(p.stdout)
    assert (report["passed"], report["failed"], report["errors"]) == (1, 1, 0)
    passed, failed = report["files"][0]["checks"]
    assert passed["passed"] and "explain" not in passed["answer"]
    assert not failed["passed"] and failed["answer"]["explain"]["closestMiss"].startswith("rule ns[default]-policy[api-policy]")


def test_policies_dir_and_command_line_policies(binary, tmp_path):
    (tmp_path / "policies").mkdir()
    harness.write_policies(tmp_path / "policies", [API_POLICY])
    (tmp_path / "tests").mkdir()
    relative = write_test_file(tmp_path / "tests", [{**ALLOWED, "expect": "ALLOW"}], policies=None, name="a.yaml",
                         policiesDir="../policies")
    nothing = write_test_file(tmp_path / "tests", [{**BATCH, "expect": "DENY"}], policies=None, name="b.yaml")
    p = run(binary, tmp_path / "tests")
    assert p.returncode == 2 and f"{nothing}:1:1: policies: the file names no policies" in p.stdout, p.stdout
    p = run(binary, relative, nothing, "--policies", tmp_path / "policies")
    assert p.returncode == 0, p.stdout
    assert p.stdout.splitlines()[-1] == "2 passed, 0 failed"
    # a broken directory is an error naming its file
    (tmp_path / "policies" / "broken.yaml").write_text("kind: AuthorizationPolicy\n")
    p = run(binary, relative)
    assert p.returncode == 2 and "policies/broken.yaml:1:1" in p.stdout, p.stdout


INVALID = [
    ({"checks": [{**ALLOWED, "expect": "ALLOW", "expectStag": "allow-policy"}]}, "checks[0].expectStag: unknown field"),
    ({"checks": [{**ALLOWED, "expect": "MAYBE"}]}, "checks[0].expect: expect must be ALLOW, DENY or UNAUTHENTICATED"),
    ({"checks": [{**ALLOWED}]}, "checks[0].expect: every check needs expect"),
    ({"checks": [{**ALLOWED, "expect": "ALLOW", "expectStage": "allow_policy"}]}, 'unknown stage "allow_policy"'),
    ({"checks": [{**ALLOWED, "expect": "ALLOW", "expectRule": "first"}]}, "checks[0].expectRule"),
    ({"checks": [{"source": {"ip": "10.1"}, "expect": "ALLOW"}]}, "checks[0].source.ip"),
    ({"checks": [{"request": {"method": "get"}, "expect": "ALLOW"}]}, "checks[0].request.method"),
    ({"checks": [{"request": {"path": "/a%00b"}, "expect": "ALLOW"}]}, "checks[0].request.path"),
    ({"polices": [], "checks": []}, 'polices: unknown field "polices"'),
    ({"policiesDir": "x", "checks": []}, "give policies or policiesDir, not both"),
    ({"checks": []} | {"policies": [{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                                      "metadata": {"name": "p"}, "spec": {"action": "NOPE"}}]}, "spec.action"),
    ({}, "a test file needs checks"),
]


@pytest.mark.parametrize("body,message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_test_files_exit_2_with_file_and_line(binary, tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(body if "policies" in body else {"policies": [API_POLICY], **body}, sort_keys=False)
    path.write_text(text)
    report = tmp_path / "junit.xml"
    p = run(binary, path, "--junit", report)
    assert p.returncode == 2, p.stdout
    assert f"ERROR {path}: cannot run" in p.stdout
    assert message in p.stdout, p.stdout
    assert any(l.strip().startswith(f"{path}:") and l.split(":")[1].isdigit() for l in p.stdout.splitlines()), p.stdout
    root = junit(report)
    assert root.get("errors") == "1" and root.find("./testsuite/testcase/error") is not None


def test_unreadable_and_not_yaml(binary, tmp_path):
    p = run(binary, tmp_path / "missing.yaml")
    assert p.returncode == 2 and "missing.yaml:1:1: cannot read" in p.stdout, p.stdout
    (tmp_path / "x.yaml").write_text("checks: [\n")
    p = run(binary, tmp_path / "x.yaml")
    assert p.returncode == 2 and "x.yaml:2:1: YAML syntax error" in p.stdout, p.stdout
    (tmp_path / "empty").mkdir()
    p = run(binary, tmp_path / "empty")
    assert p.returncode == 2 and "no test file" in p.stdout


def test_hostile_names_still_make_valid_xml(binary, tmp_path):
    path = write_test_file(tmp_path, [{"name": "a <b> & \"c\" \x01\x1b[31m ]]>", **BATCH, "expect": "ALLOW"}])
    report = tmp_path / "junit.xml"
    assert run(binary, path, "--junit", report).returncode == 1
    case = junit(report).find("./testsuite/testcase")
    assert case.get("name") == "#0 a <b> & \"c\" \ufffd\ufffd[31m ]]>"


def test_the_schema_refuses_what_reporters_would(tmp_path):
    """Negative control: the validator used above can say no."""
    bad = tmp_path / "bad.xml"
    bad.write_text('<testsuites><testsuite name="s" tests="1"><testcase classname="c"/></testsuite></testsuites>')
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        XSD.validate(str(bad))
    bad.write_text('<testsuites><testsuite name="s" tests="x"/></testsuites>')
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        XSD.validate(str(bad))
