"""examples/kubernetes as `kubectl apply -k` would apply it: the references between the files hold (selectors,
ports, volumes, names), nothing in it can overwrite a real TLS Secret, and the Deployment's own arguments start
the real binary whose probe and metrics endpoints answer where the manifests point.

There is no cluster here: the kustomization is rendered by reading its `resources` (it uses no patches or
generators), and the pod is played by the binary with the Deployment's flags, its listen addresses and mounted
paths moved to this machine.
"""
import pathlib
import re
import ssl
import urllib.request

import pytest
import yaml

import gateways

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBE = ROOT / "examples" / "kubernetes"


def documents(path: pathlib.Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def kustomization():
    return yaml.safe_load((KUBE / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def rendered(kustomization):
    """Every resource `kubectl apply -k` applies, keyed by (kind, name)."""
    out = {}
    for name in kustomization["resources"]:
        for doc in documents(KUBE / name):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} declared twice"
            out[key] = doc
    return out


def one(rendered, kind):
    found = [d for (k, _), d in rendered.items() if k == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_applying_never_writes_a_secret(rendered, kustomization):
    # A placeholder Secret in the kustomization overwrote cert-manager's real one and crash-looped the pod.
    assert not [k for k in rendered if k[0] == "Secret"]
    assert "secretGenerator" not in kustomization
    assert not (KUBE / "secret-tls.yaml").exists()


def test_every_file_is_applied_or_documented_as_optional(kustomization):
    optional = {"certificate.yaml", "servicemonitor.yaml"}
    files = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert files == set(kustomization["resources"]) | optional
    text = (KUBE / "kustomization.yaml").read_text()
    for name in optional:
        assert name in text, f"kustomization.yaml should say how to apply {name}"


def test_everything_lives_in_the_meshauthz_namespace(rendered):
    namespace = one(rendered, "Namespace")["metadata"]["name"]
    for (kind, name), doc in rendered.items():
        if kind != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, f"{kind}/{name}"
    for extra in ("certificate.yaml", "servicemonitor.yaml"):
        for doc in documents(KUBE / extra):
            assert doc["metadata"]["namespace"] == namespace


def test_selectors_select_the_pods(rendered):
    deployment = one(rendered, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
    assert selects(one(rendered, "Service")["spec"]["selector"], labels)
    assert selects(one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in spread:
        assert selects(constraint["labelSelector"]["matchLabels"], labels)
    monitor = documents(KUBE / "servicemonitor.yaml")[0]
    assert selects(monitor["spec"]["selector"]["matchLabels"], one(rendered, "Service")["metadata"]["labels"])


def test_scaling_and_disruption_keep_two_then_one(rendered):
    deployment = one(rendered, "Deployment")
    hpa = one(rendered, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] > 2
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    # The CPU target is a percentage of the request: the container must request CPU.
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"]
    assert one(rendered, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_ports_and_names_meet(rendered):
    deployment = one(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service = one(rendered, "Service")
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        assert target in ports or target in ports.values(), f"Service port {port['name']} -> {target}"
    metrics = next(p for p in service["spec"]["ports"] if p["name"] == "metrics")
    assert ports[metrics["targetPort"]] == int(pod_annotation(deployment, "prometheus.io/port"))
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(metrics["port"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    # Volumes: every mount has a volume; the ConfigMap is the one applied; the Secret is the Certificate's.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {m["name"] for m in container["volumeMounts"]} == set(volumes)
    assert volumes["policies"]["configMap"]["name"] == one(rendered, "ConfigMap")["metadata"]["name"]
    certificate = documents(KUBE / "certificate.yaml")[0]
    assert volumes["tls"]["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert pod["serviceAccountName"] in {name for (kind, name) in rendered if kind == "ServiceAccount"}


def pod_annotation(deployment, key):
    return deployment["spec"]["template"]["metadata"]["annotations"][key]


def test_the_deployments_flags_start_the_binary_and_its_probes_answer(rendered, binary, tmp_path):
    """The container's args, with the mounted paths and listen addresses moved here: the probes' paths and
    the metrics path answer on the health port, and the main port is mutual TLS."""
    deployment = one(rendered, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    # The ConfigMap's files, as the kubelet mounts them.
    policies = tmp_path / "policies"
    policies.mkdir()
    for name, text in one(rendered, "ConfigMap")["data"].items():
        (policies / name).write_text(text)
    # The Secret's files, as cert-manager writes them.
    pki = gateways.Pki(tmp_path / "pki")
    leaf = pki.issue("meshauthz", uri="spiffe://cluster.local/ns/meshauthz/sa/meshauthz", dns=("localhost",), ips=("127.0.0.1",))
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "tls.crt").write_bytes(leaf.cert.read_bytes())
    (tls / "tls.key").write_bytes(leaf.key.read_bytes())
    (tls / "ca.crt").write_bytes(pki.ca_path.read_bytes())
    main_port, health_port = gateways.free_port(), gateways.free_port()
    listen = {"--listen": f"127.0.0.1:{main_port}", "--health-listen": f"127.0.0.1:{health_port}"}
    args = []
    for arg in container["args"]:
        name, _, value = arg.partition("=")
        if name in listen:
            arg = f"{name}={listen[name]}"
        arg = arg.replace(mounts["policies"], str(policies)).replace(mounts["tls"], str(tls))
        args.append(arg)
    assert args[0] == "serve"
    with gateways.Process([binary, *args]) as server:
        server.wait_line(re.compile(r"listening on"))
        for probe in ("livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert get(health_port, path, server).status == 200, path
        metrics = get(health_port, pod_annotation(deployment, "prometheus.io/path"), server)
        assert metrics.status == 200
        assert "# TYPE" in metrics.read().decode()
        # The main listener wants a client certificate from the CA in ca.crt.
        context = pki.client_context(pki.issue("gateway", uri="spiffe://cluster.local/ns/istio-system/sa/gw"))
        with urllib.request.urlopen(f"https://127.0.0.1:{main_port}/healthz", context=context, timeout=10) as answer:
            assert answer.status == 200
        bare = ssl.create_default_context(cafile=str(pki.ca_path))
        with pytest.raises(Exception):
            urllib.request.urlopen(f"https://127.0.0.1:{main_port}/healthz", context=bare, timeout=10).read()


def get(port, path, server):
    deadline_tries = 100
    last = None
    for _ in range(deadline_tries):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
        except OSError as error:
            last = error
            if not server.alive():
                break
            import time
            time.sleep(0.1)
    raise AssertionError(f"GET {path} on {port}: {last}\n{server.log}")
