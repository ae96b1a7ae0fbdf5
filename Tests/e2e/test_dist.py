"""The binary as shipped: the Swift runtime linked in (`swift build --static-swift-stdlib`, what `make dist` and
the Dockerfile build), so it runs where no toolchain is, and the Dockerfile's runtime stage installs exactly the
Debian packages of the shared libraries it names.

`make test` relinks the debug binary the same way before this suite, so every e2e test runs the static binary;
`MESHAUTHZ_BIN=dist/meshauthz` points this file at the release binary of `make dist`.
"""
import json
import pathlib
import re
import shlex
import subprocess

import pytest
import yaml

import gateways
import harness

ROOT = harness.ROOT
TOOLCHAIN = "/opt/swift"


def needed_libraries(binary: str) -> list[str]:
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def package_of(library: str) -> str:
    """The Debian package that holds `library` on this (Debian bookworm) machine."""
    out = subprocess.run(["dpkg", "-S", f"*/{library}"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].split(":")[0]


def dockerfile_stages() -> list[list[str]]:
    """The lines of each stage of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def runtime_packages() -> set[str]:
    runtime = dockerfile_stages()[-1]
    packages: set[str] = set()
    for line in runtime:
        for command in line.split("&&"):
            words = command.split()
            if "apt-get" in words and "install" in words:
                packages |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return packages


def instruction(stage: list[str], name: str) -> str:
    found = [line[len(name) + 1:] for line in stage if line.upper().startswith(name + " ")]
    assert len(found) == 1, f"one {name} in the runtime stage: {found}"
    return found[0]


def test_no_swift_library_is_needed(binary):
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    assert "libswift" not in ldd and "Foundation" not in ldd and TOOLCHAIN not in ldd, ldd


def test_the_image_installs_exactly_the_packages_of_the_needed_libraries(binary):
    needed = {package_of(library) for library in needed_libraries(binary)}
    # libc6 (libc, libm, the loader) is in every Debian image.
    needed.discard("libc6")
    assert runtime_packages() == needed


def test_the_runtime_stage_is_slim_and_unprivileged():
    stages = dockerfile_stages()
    assert len(stages) == 2
    assert stages[0][0].startswith("FROM swift:6.3")
    assert "--static-swift-stdlib" in " ".join(stages[0])
    runtime = stages[-1]
    assert runtime[0] == "FROM debian:bookworm-slim"
    user = instruction(runtime, "USER")
    assert user.split(":")[0] not in ("0", "root")
    assert instruction(runtime, "VOLUME") == "/policies"
    assert set(instruction(runtime, "EXPOSE").split()) == {"8080", "8081"}


def unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not unshare_works(), reason="needs unshare -rm (a user and mount namespace) to hide the toolchain")
def test_it_serves_the_example_mesh_with_the_toolchain_hidden(binary, tmp_path):
    """The image's CMD, its addresses moved to loopback, in a mount namespace where /opt/swift is an empty
    tmpfs; then the image's HEALTHCHECK command against it."""
    runtime = dockerfile_stages()[-1]
    command = json.loads(instruction(runtime, "CMD"))
    main_port, health_port = gateways.free_port(), gateways.free_port()
    args = [a.replace("=/policies", f"={ROOT / 'policies'}")
             .replace("0.0.0.0:8080", f"127.0.0.1:{main_port}").replace("0.0.0.0:8081", f"127.0.0.1:{health_port}")
            for a in command]
    script = (f"mount -t tmpfs none {TOOLCHAIN} && test -z \"$(ls -A {TOOLCHAIN})\" && "
              f"exec {shlex.quote(binary)} {' '.join(shlex.quote(a) for a in args)}")
    with gateways.Process(["unshare", "-rm", "sh", "-c", script]) as server:
        server.wait_line(re.compile(r"listening on"))
        gateways.wait_http(health_port, "/readyz", server)
        checks = harness.load_case(harness.FIXTURES / "local" / "example-mesh.yaml")["checks"]
        for check in checks[:4]:
            answer = gateways.send(main_port, "POST", "/v1/check", {"content-type": "application/json"},
                                   json.dumps(harness.check_request(check)))
            assert answer.status == 200, answer
            harness.assert_answer(check, answer.json())
        healthcheck = json.loads(instruction(runtime, "HEALTHCHECK").split(" CMD ", 1)[1])
        probe = [part.replace("/8081", f"/{health_port}") for part in healthcheck]
        assert subprocess.run(probe, timeout=10).returncode == 0
    # The same probe fails when nothing answers (so the HEALTHCHECK can report unhealthy).
    assert subprocess.run(probe, timeout=10, capture_output=True).returncode != 0
