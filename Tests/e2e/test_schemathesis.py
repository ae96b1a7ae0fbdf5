"""schemathesis against openapi.yaml and a real server.

Requests generated from the document (examples, then the coverage and fuzzing phases, positive and
negative data) for every operation, with a fixed seed and number of examples so a run is short and
repeatable. schemathesis's checks (`--checks all`): no 5xx, status codes, content types, headers and
bodies as documented, schema-violating bodies refused, schema-valid ones accepted. Then the server must
still be alive and serving: a generated request must never take it down.

Two scopes, because two checks misread what the document says on purpose:
- `/v1/check` documents its 405 answers as GET/PUT/PATCH/DELETE operations, so
  `allow_header_conformance` counts those methods as allowed and rejects the server's (right) `Allow: POST`;
  it stays on for `/ext_authz`.
- `/ext_authz` answers any method (a gateway forwards whatever it received); OpenAPI 3.1 can only name
  eight, so `unsupported_method` (which tries e.g. QUERY and expects 405) stays on for the other paths only.
The 405-only operations of `/v1/check` expect 405 for valid data (the config below). `POST /v1/check` may answer
400 to schema-valid data: JSON Schema cannot say "a port written as digits" (it takes `80.0` for an integer) or
"a target Envoy would accept" (no `%00`, no control bytes), both of which the server refuses as documented.
"""
import subprocess
import sys
import time

import pytest

import harness

EXAMPLES = 30
SEED = 1
# Upper bound of one scope's run (5-15 s each on a shared 2-core machine with a debug build).
RUN_TIMEOUT = 90

CONFIG = """\
[[operations]]
include-name-regex = "^(GET|PUT|PATCH|DELETE) /v1/check$"
checks.positive_data_acceptance.expected-statuses = ["405"]

[[operations]]
include-name-regex = "^POST /v1/check$"
checks.positive_data_acceptance.expected-statuses = ["200", "400"]
"""

SCOPES = {
    "api": ["--exclude-path-regex", "^/ext_authz", "--exclude-checks", "allow_header_conformance"],
    "ext_authz": ["--include-path-regex", "^/ext_authz", "--exclude-checks", "unsupported_method"],
}

# The CLI's own entry point, run with this interpreter (not whatever `schemathesis` is first on PATH).
CLI = [sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"]


@pytest.fixture(scope="module")
def cli_available():
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        pytest.fail("schemathesis is not installed: pip install -r requirements-test.txt", pytrace=False)


@pytest.mark.timeout(RUN_TIMEOUT + 60)
@pytest.mark.parametrize("scope", sorted(SCOPES))
def test_generated_requests_conform(scope, cli_available, start_server, tmp_path):
    # The example mesh, with a default destination so that /ext_authz answers both 200 and 403.
    server = start_server(policies_dir=harness.ROOT / "policies", args=[
        "--default-namespace", "default", "--default-workload", "app=api-service,version=v1"])
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = CLI + [
        "--config-file", str(config), "run", str(harness.ROOT / "openapi.yaml"),
        "--url", server.url(""), "--checks", "all", *SCOPES[scope],
        "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--generation-database", "none", "--request-timeout", "10", "--no-color",
    ]
    started = time.monotonic()
    # cwd: schemathesis may write reports or caches into the working directory.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    tail = "\n".join(output.splitlines()[-80:])

    assert server.proc.poll() is None, f"the server exited ({server.proc.returncode}) under schemathesis:\n{tail}"
    assert server.get("/healthz").status_code == 200
    assert result.returncode == 0, f"schemathesis found problems ({scope}, {elapsed:.1f} s):\n{tail}"
    # It really ran: every operation of the scope was tested, and cases were generated.
    assert " generated, " in output and " passed" in output, tail
    generated = int(output.split(" generated, ")[0].split()[-1])
    assert generated >= 100, f"only {generated} test cases generated:\n{tail}"
    print(f"schemathesis {scope}: {generated} cases in {elapsed:.1f} s")
