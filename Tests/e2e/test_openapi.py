"""openapi.yaml is a valid OpenAPI 3.1 document, and the server answers exactly as it says.

Every documented (path, method, status) is produced by a real server here and its body, content type
and headers are validated against the document; anything the server answers that is not documented
fails too. Request bodies of every case file are validated against the CheckRequest schema.
"""
import time

import pytest
import yaml
from openapi_spec_validator import validate as validate_spec

import harness
import openapi_check as oc
from policy_sets import CHECK_ALLOWED, CHECK_DENIED, GATEWAY_SET, XFCC_FRONTEND
from test_endpoints import BROKEN_POLICY_FILE

DEFAULTS = ["--default-namespace", "default", "--default-workload", "app=api-service,version=v1"]
EXT_ALLOW = {"headers": {"x-forwarded-client-cert": XFCC_FRONTEND, "X-Tenant": "acme"}}
EXT_DENY = {"headers": {"X-Tenant": "other"}}


def test_spec_is_valid_openapi_31():
    validate_spec(oc.SPEC)
    assert oc.SPEC["openapi"].startswith("3.1")


def test_spec_documents_every_endpoint():
    assert set(oc.SPEC["paths"]) == {
        "/healthz", "/readyz", "/metrics", "/v1/check", "/v1/policies", "/v1/graph", "/ext_authz", "/ext_authz/{path}"}


@pytest.fixture(scope="module")
def servers(binary, tmp_path_factory):
    d = tmp_path_factory.mktemp("ready")
    harness.write_policies(d, GATEWAY_SET)
    bad = tmp_path_factory.mktemp("unready")
    (bad / "broken.yaml").write_text(BROKEN_POLICY_FILE)
    reload_dir = tmp_path_factory.mktemp("reload")
    harness.write_policies(reload_dir, GATEWAY_SET)
    started = {}
    try:
        started["ready"] = harness.Server(d, extra_args=DEFAULTS, binary=binary)
        started["unready"] = harness.Server(bad, extra_args=DEFAULTS, wait_ready=False, binary=binary)
        started["no-explain"] = harness.Server(d, extra_args=DEFAULTS + ["--no-explain"], binary=binary)
        started["reload-failed"] = s = harness.Server(reload_dir, extra_args=DEFAULTS, binary=binary)
        (reload_dir / "broken.yaml").write_text(BROKEN_POLICY_FILE)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not s.readyz().get("lastReloadError"):
            time.sleep(0.1)
        yield started
    finally:
        for s in started.values():
            s.stop()


EXT_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
SCENARIOS = [
    ("ready", "GET", "/healthz", {}, 200),
    ("unready", "GET", "/healthz", {}, 200),
    ("ready", "GET", "/readyz", {}, 200),
    ("reload-failed", "GET", "/readyz", {}, 200),
    ("unready", "GET", "/readyz", {}, 503),
    ("ready", "GET", "/metrics", {}, 200),
    ("ready", "POST", "/v1/check", {"json": CHECK_ALLOWED}, 200),
    ("ready", "POST", "/v1/check", {"json": CHECK_DENIED}, 200),
    ("ready", "POST", "/v1/check", {"json": [CHECK_ALLOWED, CHECK_DENIED, {}]}, 200),
    ("ready", "POST", "/v1/check", {"json": dict(CHECK_ALLOWED, request={"path": "/api/orders", "method": "GET"})}, 200),
    ("unready", "POST", "/v1/check", {"json": CHECK_ALLOWED}, 200),
    ("ready", "POST", "/v1/check?explain=true", {"json": CHECK_DENIED}, 200),
    ("ready", "POST", "/v1/check?explain=true", {"json": [CHECK_ALLOWED, CHECK_DENIED]}, 200),
    ("ready", "POST", "/v1/check?explain=yes", {"json": CHECK_DENIED}, 400),
    ("ready", "POST", "/v1/check?explain=true", {"json": [CHECK_DENIED] * 101}, 400),
    ("no-explain", "POST", "/v1/check?explain=true", {"json": CHECK_DENIED}, 403),
    ("no-explain", "POST", "/v1/check", {"json": CHECK_DENIED}, 200),
    ("unready", "POST", "/v1/check?explain=true", {"json": CHECK_ALLOWED}, 200),
    ("ready", "POST", "/v1/check", {"data": "{oops"}, 400),
    ("ready", "POST", "/v1/check", {"json": {"source": {"ip": "1.2.3.4.5"}}}, 400),
    ("ready", "POST", "/v1/check", {"json": [{"bogus": 1}]}, 400),
    ("ready", "GET", "/v1/check", {}, 405),
    ("ready", "DELETE", "/v1/check", {}, 405),
    ("ready", "PUT", "/v1/check", {"json": {}}, 405),
    ("ready", "PATCH", "/v1/check", {"json": {}}, 405),
    ("ready", "POST", "/v1/check", {"json": [{}] * 1001}, 400),
    ("ready", "POST", "/v1/check", {"data": b"[" + b"{}," * 1_500_000 + b"{}]"}, 413),
    ("ready", "GET", "/v1/policies", {}, 200),
    ("unready", "GET", "/v1/policies", {}, 200),
    ("ready", "GET", "/v1/graph", {}, 200),
    ("ready", "GET", "/v1/graph?format=json", {}, 200),
    ("ready", "GET", "/v1/graph?format=dot", {}, 200),
    ("ready", "GET", "/v1/graph?format=mermaid", {}, 200),
    ("ready", "GET", "/v1/graph?format=png", {}, 400),
    ("unready", "GET", "/v1/graph", {}, 503),
    ("unready", "GET", "/ext_authz/api/users", EXT_ALLOW, 403),
    # an AUDIT rule matches: x-meshauthz-audit, validated against its documented pattern
    ("ready", "GET", "/ext_authz/api/orders", EXT_ALLOW, 200),
] + [
    ("ready", m, "/ext_authz/tenant/x?y=1", EXT_ALLOW, 200) for m in EXT_METHODS
] + [
    ("ready", m, "/ext_authz/tenant/x", EXT_DENY, 403) for m in EXT_METHODS
] + [
    ("ready", m, "/ext_authz", {"headers": dict(EXT_ALLOW["headers"], **{
        "X-Original-Method": "GET", "X-Original-URI": "/tenant/a"})}, 200) for m in EXT_METHODS
] + [
    ("ready", m, "/ext_authz", {"headers": dict(EXT_DENY["headers"], **{
        "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/tenant/a", "X-Forwarded-Host": "a.example.com"})}, 403)
    for m in EXT_METHODS
] + [
    # Gateway requests meshauthz cannot judge: 403 with an Error body.
    ("ready", "GET", "/ext_authz", EXT_ALLOW, 403),
    ("ready", "GET", "/ext_authz/tenant/x", {"headers": dict(EXT_ALLOW["headers"], **{"x-authz-workload": "app"})}, 403),
    ("ready", "GET", "/ext_authz/a%00b", EXT_ALLOW, 403),
]


@pytest.mark.parametrize("server_key,method,path,kwargs,status", SCENARIOS,
                         ids=[f"{s[0]}-{s[1]}-{s[2]}-{s[4]}" for s in SCENARIOS])
def test_response_matches_spec(servers, server_key, method, path, kwargs, status):
    s = servers[server_key]
    r = s.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    problems = oc.check_response(method, path, r)
    assert not problems, "\n".join(problems)


def test_reload_failed_scenario_really_failed(servers):
    assert servers["reload-failed"].readyz().get("lastReloadError"), "the reload-failed scenario did not happen"


def test_every_documented_response_was_served():
    """Runs after the scenarios above: nothing documented is left unproduced."""
    missing = oc.documented() - oc.OBSERVED
    assert not missing, f"documented but never observed: {sorted(missing)}"


def test_case_requests_match_the_request_schema():
    errors = []
    for path in harness.case_files():
        for i, check in enumerate(harness.load_case(path)["checks"]):
            for e in oc.schema_errors(harness.check_request(check), oc.component("CheckRequest")):
                errors.append(f"{harness.case_id(path)}#{i}: {e}")
    assert not errors, "\n".join(errors[:50])


def test_request_schema_rejects_unknown_keys():
    assert oc.schema_errors({"sourc": {}}, oc.component("CheckRequest"))
    assert oc.schema_errors({"destination": {"port": 70000}}, oc.component("CheckRequest"))
    assert not oc.schema_errors({}, oc.component("CheckRequest"))


def test_example_request_in_spec_is_allowed_by_the_example_mesh(mesh_server):
    example = oc.SPEC["paths"]["/v1/check"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    body = example["allowed"]["value"]
    assert not oc.schema_errors(body, oc.component("CheckRequest"))
    assert mesh_server.check(body)["decision"] == "ALLOW"


def test_openapi_yaml_has_no_duplicate_keys():
    class Strict(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        dupes = {k for k in keys if keys.count(k) > 1}
        assert not dupes, f"duplicate keys {dupes} at line {node.start_mark.line + 1}"
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    yaml.load(oc.SPEC_PATH.read_text(), Loader=Strict)
