"""The /v1/graph page in a real headless browser (Debian's chromium, installed by `make deps`): loaded from a running
server, drawn, screenshotted, and checked to show the example mesh's six services, their edges, and, for a selected
node, who may call it with the rule ids."""
import html
import re
import shutil
import subprocess

import pytest

import harness
from test_graph import SAAS_EDGES, SERVICES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser(tmp_path, *args):
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make deps` (scripts/install-deps.sh installs it)", pytrace=False)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.fixture
def page_url(start_server, tmp_path):
    d = tmp_path / "repo"
    shutil.copytree(harness.ROOT / "policies", d / "policies")
    shutil.copytree(harness.ROOT / "examples" / "workloads", d / "workloads")
    s = start_server(policies_dir=d)
    return s.url("/v1/graph")


def test_page_draws_the_six_services_and_their_edges(page_url, tmp_path):
    dom = browser(tmp_path, "--dump-dom", page_url)
    assert 'data-ready="true"' in dom, "the page's script did not finish"
    drawn = set(re.findall(r'<g class="node[^"]*" data-id="workload:[^/"]+/([^"]+)"', dom))
    assert set(SERVICES) <= drawn, drawn
    edges = {(a.split("/")[-1], b.split("/")[-1]) for a, b in re.findall(r'<g class="edge[^"]*" data-from="([^"]+)" data-to="([^"]+)"', dom)}
    assert SAAS_EDGES <= edges, SAAS_EDGES - edges
    shot = tmp_path / "graph.png"
    browser(tmp_path, "--window-size=1400,900", f"--screenshot={shot}", page_url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, len(data)


def test_selecting_a_node_lists_its_callers_and_rule_ids(page_url, tmp_path):
    # The click handler and the #select= fragment call the same function.
    dom = browser(tmp_path, "--dump-dom", page_url + "#select=workload:billing/billing-service")
    assert 'data-selected="workload:billing/billing-service"' in dom
    callers = set(re.findall(r'<li class="caller" data-from="workload:[^/"]+/([^"]+)"', dom))
    assert callers == {"api-gateway", "order-service"}, callers
    rules = {html.unescape(r) for r in re.findall(r'<code class="rule">([^<]+)</code>', dom)}
    assert rules == {"ns[billing]-policy[billing-service]-rule[0]"}
