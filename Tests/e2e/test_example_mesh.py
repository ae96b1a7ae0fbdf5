"""The bundled example mesh (policies/) served as committed, and its fixture kept in sync with it."""
import importlib.util

import pytest

import harness

FIXTURE = harness.FIXTURES / "local" / "example-mesh.yaml"
CHECKS = harness.load_case(FIXTURE)["checks"]


def _sync_module():
    spec = importlib.util.spec_from_file_location("sync", harness.ROOT / "scripts" / "sync-example-mesh-fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_mesh_fixture_matches_policies_dir():
    docs = _sync_module().policies_dir_documents()
    assert harness.load_case(FIXTURE)["policies"] == docs, (
        "Tests/fixtures/local/example-mesh.yaml is out of date: run scripts/sync-example-mesh-fixture.py")


def test_example_mesh_shape():
    docs = _sync_module().policies_dir_documents()
    pas = [d for d in docs if d["kind"] == "PeerAuthentication"]
    assert {(p["metadata"]["namespace"], p["spec"]["mtls"]["mode"]) for p in pas} == {("istio-system", "STRICT")}
    allow_nothing = {d["metadata"]["namespace"] for d in docs
                     if d["kind"] == "AuthorizationPolicy" and not d.get("spec")}
    assert allow_nothing == {"default", "edge", "auth", "core", "billing"}
    rules = {d["metadata"]["name"]: d["spec"]["trafficPolicy"]["tls"]["mode"] for d in docs if d["kind"] == "DestinationRule"}
    assert len(rules) == 8 and set(rules.values()) == {"ISTIO_MUTUAL"}


@pytest.mark.parametrize("index", range(len(CHECKS)), ids=[f"#{i}" for i in range(len(CHECKS))])
def test_policies_dir_as_served(mesh_server, index):
    check = CHECKS[index]
    harness.assert_answer(check, mesh_server.check(harness.check_request(check)))


def test_readyz_of_the_example_mesh(mesh_server):
    ready = mesh_server.readyz()
    assert ready["policies"] == 13 and ready["peerAuthentications"] == 1, ready
    assert ready["otherResources"] == {"DestinationRule": 8, "MeshServices": 1}, ready
