#!/usr/bin/env python3
"""Exit 0 when every requirement of a requirements file is installed at a satisfying version."""
import importlib.metadata
import re
import sys


def satisfied(line):
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:>=\s*([0-9][0-9.]*))?", line)
    if not m:
        return True
    name, minimum = m.group(1), m.group(2)
    try:
        have = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    if minimum is None:
        return True
    as_tuple = lambda v: tuple(int(x) for x in re.findall(r"\d+", v)[:4])  # noqa: E731
    return as_tuple(have) >= as_tuple(minimum)


def main(path):
    with open(path) as f:
        lines = [l.split("#", 1)[0].strip() for l in f]
    missing = [l for l in lines if l and not satisfied(l)]
    for l in missing:
        print(f"missing: {l}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements-test.txt"))
