"""Every check of every case file (conformance, oracle, local) through the real HTTP server.

One server per case file (its `policies` written as one multi-document policies.yaml), reused by the
checks of that file; each check is POSTed alone to /v1/check, then all checks of a file once more as
one JSON array, which must give the same answers in the same order.

Both decision engines are run (`serve --engine reference|compiled`): the reference evaluator is the
oracle, the compiled matcher must agree with it. MESHAUTHZ_ENGINES=reference limits the run.
"""
import os

import pytest

import harness
import openapi_check as oc

ENGINES = [e for e in os.environ.get("MESHAUTHZ_ENGINES", "reference,compiled").split(",") if e]
CASES = [(e, p, i) for e in ENGINES for p in harness.case_files()
         for i in range(len(harness.load_case(p)["checks"]))]
FILES = [(e, p) for e in ENGINES for p in harness.case_files()]


@pytest.mark.parametrize(
    "engine,path,index", CASES, ids=[f"{e}:{harness.case_id(p)}#{i}" for e, p, i in CASES]
)
def test_check(case_servers, engine, path, index):
    check = harness.load_case(path)["checks"][index]
    server = case_servers.get(path, engine)
    answer = server.check(harness.check_request(check))
    harness.assert_answer(check, answer)


@pytest.mark.parametrize("engine,path", FILES, ids=[f"{e}:{harness.case_id(p)}" for e, p in FILES])
def test_batch_matches_single_answers(case_servers, engine, path):
    checks = harness.load_case(path)["checks"]
    server = case_servers.get(path, engine)
    bodies = [harness.check_request(c) for c in checks]
    singles = [server.check(b) for b in bodies]
    r = server.post("/v1/check", json=bodies)
    assert r.status_code == 200, r.text
    batch = r.json()
    assert isinstance(batch, list) and len(batch) == len(bodies), batch
    for i, (one, many) in enumerate(zip(singles, batch)):
        assert many == one, f"check #{i}: batch answer differs from the single answer"
        assert many["decision"] == harness.expected_decision(checks[i]), harness.describe(checks[i], many)
        problems = oc.schema_errors(many, oc.component("CheckAnswer"))
        assert not problems, f"check #{i}: answer does not match openapi.yaml CheckAnswer: {problems}\n{many}"
    # ?explain=true: the same answers plus `explain`, whose (reference) decision is the served one, whichever engine.
    explained_answers = []
    for start in range(0, len(bodies), 100):  # at most 100 requests per explained batch
        r = server.post("/v1/check?explain=true", json=bodies[start:start + 100])
        assert r.status_code == 200, r.text
        explained_answers += r.json()
    assert len(explained_answers) == len(singles)
    for i, (one, explained) in enumerate(zip(singles, explained_answers)):
        if one["stage"] == "request-authentication":
            # A refused token is decided before any policy: there is no authorization to trace.
            assert "explain" not in explained and explained == one, explained
            continue
        trace = explained.pop("explain")
        assert explained == one, f"check #{i}: explain changed the answer"
        assert (trace["decision"], trace["stage"], trace["ruleId"]) == (one["decision"], one["stage"], one["ruleId"]), \
            f"check #{i}: explained {trace['decision']} {trace['stage']} {trace['ruleId']} but {engine} answered {one}"
        assert (trace["closestMiss"] is None) == one["allowed"], trace
        problems = oc.schema_errors(trace, oc.component("Explanation"))
        assert not problems, f"check #{i}: explain does not match openapi.yaml Explanation: {problems}"


def test_case_files_present():
    names = {harness.case_id(p) for p in harness.case_files()}
    assert len([n for n in names if n.startswith("conformance/")]) >= 45
    assert len([n for n in names if n.startswith("oracle/")]) >= 18
    assert "oracle/derived/allow-path-no-star.yaml" in names
    assert len(CASES) >= 275 * len(ENGINES)


@pytest.mark.parametrize("name", ["conformance", "oracle", "istio-integration", "jwt-oracle"])
def test_fixtures_are_copies_of_the_shared_cases(name):
    """Tests/fixtures/{conformance,oracle,istio-integration} are copies of ../shared/*: refresh them when the shared ones change."""
    shared = harness.ROOT.parent / "shared" / name
    if not shared.is_dir():
        pytest.skip(f"{shared} is not beside this checkout")
    ours = harness.FIXTURES / name
    files = lambda d: {str(p.relative_to(d)): p.read_bytes() for p in d.rglob("*") if p.is_file()}  # noqa: E731
    theirs, mine = files(shared), files(ours)
    assert sorted(theirs) == sorted(mine), f"cp -r {shared}/. {ours}/ to refresh"
    changed = [f for f in theirs if theirs[f] != mine[f]]
    assert not changed, f"differ from {shared}: {changed}"
