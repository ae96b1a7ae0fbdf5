#!/usr/bin/env python3
"""Copy the documents of policies/*.yaml into Tests/fixtures/local/example-mesh.yaml.

The fixture holds the bundled example mesh inline (the conformance case format has no way to point
at a directory) followed by hand-written checks. Run this after editing policies/; the e2e test
`test_example_mesh_fixture_matches_policies_dir` fails while the two differ.
"""
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "Tests/fixtures/local/example-mesh.yaml"
HEADER = (
    "# GENERATED policies (scripts/sync-example-mesh-fixture.py copies them from policies/);\n"
    "# the checks below them are hand-written.\n"
)


def policies_dir_documents(directory=ROOT / "policies"):
    docs = []
    # services.yaml is what `meshauthz generate` writes the others from: not a policy.
    for path in sorted(p for p in directory.glob("*.y*ml") if p.name != "services.yaml"):
        with open(path) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d is not None)
    return docs


def main():
    case = yaml.safe_load(FIXTURE.read_text())
    case["policies"] = policies_dir_documents()
    body = yaml.safe_dump(case, sort_keys=False, default_flow_style=None, width=110)
    FIXTURE.write_text(HEADER + body)
    print(f"{FIXTURE.relative_to(ROOT)}: {len(case['policies'])} policies, {len(case['checks'])} checks")


if __name__ == "__main__":
    sys.exit(main())
