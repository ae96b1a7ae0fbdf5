#!/usr/bin/env python3
"""Sends N requests over one keep-alive HTTP/1.1 connection (for the callgrind runs of Benchmarks/run.sh).

With --warmup W, W requests go first (the same in a run of none), so that the difference between two runs
measures requests the server has seen before (its answer caches warm). Requests come from a tab-separated file written by `MeshAuthzBench --write-requests` (method, target, then
header name/value pairs), used in turn. Exits non-zero if a response is neither 200 nor 403 or the
connection is not kept alive.
"""
import argparse
import http.client
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--warmup", type=int, default=0,
                        help="requests sent before the counted ones (a run of none then sends only these)")
    args = parser.parse_args()
    entries = []
    with open(args.file, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 2:
                headers = dict(zip(fields[2::2], fields[3::2]))
                entries.append((fields[0], fields[1], headers))
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=600)
    codes = {}
    for i in range(args.warmup + args.requests):
        method, target, headers = entries[i % len(entries)]
        connection.request(method, target, headers=headers)
        response = connection.getresponse()
        response.read()
        codes[response.status] = codes.get(response.status, 0) + 1
        if response.will_close:
            print(f"connection closed by the server after request {i + 1}", file=sys.stderr)
            return 1
    connection.close()
    print(" ".join(f"{code}:{count}" for code, count in sorted(codes.items())))
    return 0 if set(codes) <= {200, 403} else 1


if __name__ == "__main__":
    sys.exit(main())
