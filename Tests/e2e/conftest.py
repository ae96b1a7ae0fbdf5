"""Fixtures: locate the meshauthz binary (never builds it) and run servers on ephemeral ports."""
import pathlib

import pytest

import harness


@pytest.fixture(scope="session")
def binary():
    try:
        return harness.find_binary()
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def start_server(binary, request, tmp_path):
    """start_server(policies=[...] | policies_dir=DIR, args=[...], wait_ready=True) -> harness.Server.

    Every server started is stopped by pid at teardown; its log is attached to a failing test's report.
    """
    servers = []
    request.node._meshauthz_servers = servers

    def start(policies=None, policies_dir=None, args=(), wait_ready=True):
        if policies_dir is None:
            policies_dir = tmp_path / f"policies-{len(servers)}"
            harness.write_policies(pathlib.Path(policies_dir), policies or [])
        try:
            s = harness.Server(policies_dir, extra_args=args, wait_ready=wait_ready, binary=binary)
        except harness.HarnessError as e:
            pytest.fail(str(e), pytrace=False)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


class CaseServers:
    """One server per case file, reused by the checks of that file (they are collected in order)."""

    def __init__(self, binary, tmp_factory):
        self.binary = binary
        self.tmp_factory = tmp_factory
        self.current_path = None
        self.current = None
        self.failed = {}

    def get(self, path, engine="reference"):
        key = (path, engine)
        if key in self.failed:
            pytest.fail(self.failed[key], pytrace=False)
        if key != self.current_path:
            self.close()
            case = harness.load_case(path)
            d = self.tmp_factory.mktemp("case")
            harness.write_policies(d, case.get("policies") or [])
            # a case with no policies (001-no-policies) means its empty set: say so, as an operator would
            # and the files are complete before the server starts: no settle time (the reload tests keep it)
            args = ["--engine", engine, "--reload-settle", "0"] + ([] if case.get("policies") else ["--allow-empty"])
            try:
                self.current = harness.Server(d, extra_args=args, binary=self.binary)
            except harness.HarnessError as e:
                self.failed[key] = f"{harness.case_id(path)} ({engine}): server did not become ready: {e}"
                pytest.fail(self.failed[key], pytrace=False)
            self.current_path = key
        return self.current

    def close(self):
        if self.current is not None:
            self.current.stop()
        self.current = None
        self.current_path = None


@pytest.fixture(scope="session")
def case_servers(binary, tmp_path_factory):
    pool = CaseServers(binary, tmp_path_factory)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def mesh_server(binary):
    """A server on the bundled example mesh, policies/ as committed."""
    try:
        s = harness.Server(harness.ROOT / "policies", binary=binary)
    except harness.HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield s
    s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for i, s in enumerate(getattr(item, "_meshauthz_servers", [])):
            report.sections.append((f"meshauthz server {i} log (pid {s.pid})", s.log))
