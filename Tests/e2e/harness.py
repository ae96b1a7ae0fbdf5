"""Helpers shared by the end-to-end tests: find the binary, run `meshauthz serve`, load case files."""
from __future__ import annotations

import functools
import os
import pathlib
import re
import shutil
import signal
import subprocess
import threading
import time

import requests
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "Tests" / "fixtures"
CASE_DIRS = ("conformance", "oracle", "local", "istio-integration", "jwt-oracle")
REQUEST_KEYS = ("source", "destination", "request", "connection")
LISTENING = re.compile(r"listening on http://([0-9.]+):([0-9]+)")
START_TIMEOUT = 30.0


class HarnessError(RuntimeError):
    pass


_binary_cache: str | None = None


def find_binary() -> str:
    """MESHAUTHZ_BIN, else .build/debug/meshauthz, else `swift build --show-bin-path`/meshauthz."""
    global _binary_cache
    if _binary_cache:
        return _binary_cache
    candidates = []
    env = os.environ.get("MESHAUTHZ_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise HarnessError(f"MESHAUTHZ_BIN={env} is not an executable file")
        _binary_cache = env
        return env
    candidates.append(ROOT / ".build" / "debug" / "meshauthz")
    if shutil.which("swift"):
        try:
            out = subprocess.run(
                ["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, timeout=120
            )
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(pathlib.Path(out.stdout.strip()) / "meshauthz")
        except (OSError, subprocess.TimeoutExpired):
            pass
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            _binary_cache = str(c)
            return _binary_cache
    raise HarnessError(
        "meshauthz binary not found: run `swift build` (or `make build`) first, or set MESHAUTHZ_BIN; "
        f"looked at {[str(c) for c in candidates]}"
    )


class Server:
    """One `meshauthz serve` subprocess on 127.0.0.1 with an ephemeral port."""

    def __init__(self, policies_dir, extra_args=(), wait_ready=True, binary=None):
        self.policies_dir = str(policies_dir)
        self.extra_args = list(extra_args)
        self.binary = binary or find_binary()
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.host = "127.0.0.1"
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._port_found = threading.Event()
        self.session = requests.Session()
        self.returncode: int | None = None
        self.start(wait_ready)

    # -- process ---------------------------------------------------------------------------------
    def start(self, wait_ready=True):
        args = [
            self.binary, "serve",
            "--policies", self.policies_dir,
            "--listen", "127.0.0.1:0",
            "--root-namespace", "istio-system",
            "--trust-domain", "cluster.local",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, errors="replace", start_new_session=True,
        )
        for stream in (self.proc.stderr, self.proc.stdout):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._port_found.wait(0.05):
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise HarnessError(f"meshauthz serve exited with {self.proc.returncode} before listening:\n{self.log}")
            if time.monotonic() > deadline:
                self.stop()
                raise HarnessError(f"meshauthz serve did not log 'listening on' within {START_TIMEOUT}s:\n{self.log}")
        self.wait_for("/readyz" if wait_ready else "/healthz", deadline)

    def _pump(self, stream):
        for line in stream:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
            if not self._port_found.is_set():
                m = LISTENING.search(line)
                if m:
                    self.host, self.port = m.group(1), int(m.group(2))
                    self._port_found.set()

    def wait_for(self, path, deadline=None):
        deadline = deadline or time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.session.get(self.url(path), timeout=2)
                if last.status_code == 200:
                    return last
            except requests.RequestException as e:
                last = e
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise HarnessError(f"{path} not 200 in time (last: {getattr(last, 'text', last)}):\n{self.log}")

    @property
    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines[-200:])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send_signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0) -> int | None:
        """Stop our own process by pid; returns its exit code (None if it had to be killed)."""
        self.session.close()
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
                self.returncode = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                self.returncode = None
        else:
            self.returncode = self.proc.returncode
        return self.returncode

    # -- HTTP --------------------------------------------------------------------------------------
    def url(self, path):
        return f"http://{self.host}:{self.port}{path}"

    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.get(self.url(path), **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.post(self.url(path), **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 10)
        return self.session.request(method, self.url(path), **kw)

    def check(self, body):
        r = self.post("/v1/check", json=body)
        if r.status_code != 200:
            raise AssertionError(f"POST /v1/check -> {r.status_code} {r.text}\nbody: {body}")
        return r.json()

    def raw(self, data: bytes) -> bytes:
        """Send raw bytes on a fresh connection and return everything read until close."""
        import socket
        with socket.create_connection((self.host, self.port), timeout=5) as s:
            s.sendall(data)
            chunks = []
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    chunks.append(b)
            except socket.timeout:
                pass
        return b"".join(chunks)

    def readyz(self):
        return self.get("/readyz").json()


# -- case files ----------------------------------------------------------------------------------
def case_files():
    files = []
    for d in CASE_DIRS:
        files.extend(sorted((FIXTURES / d).rglob("*.yaml")))
    return files


def case_id(path: pathlib.Path) -> str:
    return str(path.relative_to(FIXTURES))


@functools.lru_cache(maxsize=None)
def _load_case_cached(path: str):
    with open(path) as f:
        return yaml.safe_load(f)


def load_case(path):
    """A case file as parsed YAML (cached: do not modify the result)."""
    return _load_case_cached(str(path))


def check_request(check) -> dict:
    """Only the request keys of a check: what `POST /v1/check` receives."""
    return {k: check[k] for k in REQUEST_KEYS if k in check}


def write_policies(directory: pathlib.Path, policies, name="policies.yaml") -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if policies:
        text = yaml.safe_dump_all(policies, sort_keys=False)
    else:
        text = "# no policies\n"
    path.write_text(text)
    return path


def describe(check, answer) -> str:
    import json
    return (
        f"expected {check['expect']} ({check.get('why', '')})\n"
        f"request: {json.dumps(check_request(check))}\n"
        f"answer:  {json.dumps(answer)}"
    )


def expected_decision(check) -> str:
    """ALLOW or DENY: `UNAUTHENTICATED` (jwt-oracle, Envoy's 401) is a DENY on /v1/check."""
    return "DENY" if check["expect"] == "UNAUTHENTICATED" else check["expect"]


def assert_answer(check, answer):
    """Compare one answer with a case's check (expect plus local expect* keys)."""
    msg = describe(check, answer)
    assert answer.get("decision") == expected_decision(check), msg
    assert answer.get("allowed") is (check["expect"] == "ALLOW"), msg
    if check["expect"] == "UNAUTHENTICATED":
        assert "authentication" in answer.get("stage", ""), msg
    for key, field in (
        ("expectStage", "stage"), ("expectPolicy", "policy"), ("expectRule", "rule"),
        ("expectRuleId", "ruleId"), ("expectMtlsMode", "mtlsMode"),
    ):
        if key in check:
            assert answer.get(field) == check[key], f"{field}: {answer.get(field)!r} != {check[key]!r}\n{msg}"
    for text in check.get("expectReasonContains", []):
        assert text in answer.get("reason", ""), f"reason lacks {text!r}\n{msg}"
    for want in check.get("expectDryRun", []):
        got = answer.get("dryRun") or []
        assert any(all(d.get(k) == v for k, v in want.items()) for d in got), f"dryRun lacks {want}\n{msg}"
