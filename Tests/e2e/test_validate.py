"""Bad policy files: `meshauthz validate` names file, line and field (`FILE:LINE:COL: FIELD: message`).

Each snippet marks the line the error must point at with `#<` (the marker is stripped before writing).
"""
import re
import subprocess
import textwrap

import pytest

import harness

ERROR_LINE = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")

HEAD = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p
  namespace: default
spec:
"""


def ap(body):
    return HEAD + textwrap.indent(textwrap.dedent(body), "  ")


BAD = {
    "unknown-field": (ap("""\
        rules:
        - from:
          - source:
              principal: ["cluster.local/ns/default/sa/x"]  #<
        """), "principal"),
    "unknown-spec-field": (ap("""\
        actions: ALLOW  #<
        rules: [{}]
        """), "actions"),
    "bad-cidr": (ap("""\
        rules:
        - from:
          - source:
              ipBlocks: ["10.0.0.0/8", "10.0.0.0/33"]  #<
        """), "ipBlocks"),
    "bad-ip-in-condition": (ap("""\
        rules:
        - when:
          - key: source.ip
            values: ["10.1.2"]  #<
        """), "when"),
    "star-inside-template-segment": (ap("""\
        rules:
        - to:
          - operation:
              paths: ["/ok", "/foo/{*}.txt"]  #<
        """), "paths"),
    "double-star-not-last": (ap("""\
        rules:
        - to:
          - operation:
              paths: ["/{**}/a/{*}"]  #<
        """), "paths"),
    "unknown-condition-key": (ap("""\
        rules:
        - when:
          - key: destination.labels[app]  #<
            values: ["x"]
        """), "when"),
    "port-out-of-range": (ap("""\
        rules:
        - to:
          - operation:
              ports: ["70000"]  #<
        """), "ports"),
    "bad-action": (ap("""\
        action: PERMIT  #<
        rules: [{}]
        """), "action"),
    "provider-on-allow": (ap("""\
        action: ALLOW
        provider: {name: ext}  #<
        rules: [{}]
        """), "provider"),
    "empty-from": (ap("""\
        rules:
        - from: []  #<
        """), "from"),
    "wildcard-selector-label": (ap("""\
        selector:
          matchLabels: {app: "*"}  #<
        """), "matchLabels"),
    "rules-not-a-list": (ap("""\
        rules: {from: []}  #<
        """), "rules"),
    "empty-principal": (ap("""\
        rules:
        - from:
          - source:
              principals: [""]  #<
        """), "principals"),
    "star-in-service-accounts": (ap("""\
        rules:
        - from:
          - source:
              serviceAccounts: ["default/*"]  #<
        """), "serviceAccounts"),
    "middle-star-trust-domain": (ap("""\
        rules:
        - from:
          - source:
              trustDomains: ["a*b"]  #<
        """), "trustDomains"),
    "condition-without-values": (ap("""\
        rules:
        - when:
          - key: request.headers[x-a]  #<
        """), "when"),
    "peer-authentication-bad-mode": ("""\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: default
spec:
  mtls:
    mode: STRICTER  #<
""", "mode"),
}

SYNTAX = {
    "yaml-syntax-error": """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: p
  namespace: default
spec:
  selector:
    matchLabels: {app: x  #<
  action: ALLOW
""",
    "truncated-multi-document": """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: first, namespace: default}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: second, namespace: default}
spec:
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/a",  #<
""",
    "tab-indentation": "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n\tname: p  #<\n",
}


def marked(text):
    lines = text.splitlines()
    marks = [i + 1 for i, l in enumerate(lines) if "#<" in l]
    assert len(marks) == 1
    return re.sub(r"\s*#<", "", text), marks[0]


def run_validate(binary, d, *args):
    return subprocess.run([binary, "validate", "--policies", str(d), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def error_lines(out):
    return [m for m in (ERROR_LINE.match(l.strip()) for l in out.splitlines()) if m]


def assert_reported(proc, filename, line, field=None, slack=0):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}\n{out}"
    errors = error_lines(out)
    assert errors, f"no FILE:LINE:COL: lines in:\n{out}"
    hits = [m for m in errors if m["file"].endswith(filename)
            and line <= int(m["line"]) <= line + slack
            and (field is None or field in m["rest"].split(": ")[0] or field in m["rest"])]
    assert hits, f"expected {filename}:{line}{'+' + str(slack) if slack else ''} naming {field!r}:\n{out}"
    return hits


@pytest.mark.parametrize("name", sorted(BAD))
def test_validate_names_file_line_and_field(binary, tmp_path, name):
    text, line = marked(BAD[name][0])
    field = BAD[name][1]
    (tmp_path / "ok.yaml").write_text(harness.yaml.safe_dump(
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "fine", "namespace": "default"}, "spec": {}}))
    (tmp_path / f"{name}.yaml").write_text(text)
    proc = run_validate(binary, tmp_path)
    hits = assert_reported(proc, f"{name}.yaml", line, field)
    # the field is in FIELD position, before the message
    assert any(field in m["rest"].split(": ")[0] for m in hits), hits[0].group(0)
    out = proc.stdout + proc.stderr
    assert "ok.yaml" not in out, "the valid file must not be blamed"


@pytest.mark.parametrize("name", sorted(SYNTAX))
def test_validate_reports_yaml_errors(binary, tmp_path, name):
    text, line = marked(SYNTAX[name])
    (tmp_path / f"{name}.yml").write_text(text)
    proc = run_validate(binary, tmp_path)
    # a parser notices a syntax error on the marked line or shortly after it
    assert_reported(proc, f"{name}.yml", line, slack=2)


def test_validate_reports_every_error(binary, tmp_path):
    (tmp_path / "two.yaml").write_text(ap("""\
        rules:
        - from:
          - source:
              ipBlocks: ["10.0.0.0/33"]
          to:
          - operation:
              ports: ["99999"]
        """))
    proc = run_validate(binary, tmp_path)
    assert_reported(proc, "two.yaml", 10, "ipBlocks")
    assert_reported(proc, "two.yaml", 13, "ports")


def test_validate_accepts_the_example_mesh(binary):
    proc = run_validate(binary, harness.ROOT / "policies")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_validate_accepts_every_case_file(binary, tmp_path):
    bad = []
    for path in harness.case_files():
        d = tmp_path / harness.case_id(path).replace("/", "_")
        policies = harness.load_case(path).get("policies") or []
        harness.write_policies(d, policies)
        # an inline empty set (001-no-policies) is intended: validate is told so, as serve is
        proc = run_validate(binary, d, *([] if policies else ["--allow-empty"]))
        if proc.returncode != 0:
            bad.append(f"{harness.case_id(path)}: exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()}")
    assert not bad, "\n".join(bad)


def test_validate_keeps_other_kinds_and_versions(binary, tmp_path):
    (tmp_path / "mixed.yaml").write_text("""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: default}
spec:
  host: api-service.default.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: old-api, namespace: default}
spec:
  rules: [{}]
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: PERMISSIVE}}
""")
    proc = run_validate(binary, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
