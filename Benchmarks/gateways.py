#!/usr/bin/env python3
"""Through the same Envoy, side by side in one run: what authorization costs at the gateway.

Targets (all on 127.0.0.1, the same request `GET /api/users` carrying the frontend's identity in XFCC):
  direct        wrk -> upstream (nginx answering 200 "ok")
  envoy         wrk -> Envoy (no authorization) -> upstream
  envoy-rbac    wrk -> Envoy with its built-in `rbac` filter holding the equivalent of api-policy -> upstream
                (the in-process baseline Istio itself uses; the identity is matched in XFCC, as meshauthz does)
  ext_authz     wrk -> Envoy, ext_authz to meshauthz over plaintext HTTP -> upstream
  ext_authz-mtls wrk -> Envoy, ext_authz to meshauthz over mutual TLS -> upstream

One Envoy process serves the four Envoy targets on four listeners (one worker thread); its ext_authz filters and
meshauthz clusters are taken from examples/envoy/envoy-xfcc.yaml and envoy-mtls.yaml as rendered, so the benchmark
measures the example configuration. meshauthz serves the bundled policies/ (api-policy).

- Throughput: wrk at N connections, several interleaved rounds, median kept; meanwhile the CPU time each process
  spends per request is read from /proc.
- Latency a lone request pays: one request at a time on a keep-alive connection per target, the targets taken in
  turn request by request (a burst of noise from elsewhere on the machine hits them all alike); p50/p99 per target.
Nothing is pinned by default (on a shared machine a pinned process cannot escape a busy CPU);
--client-cpu 0 --server-cpu 1 pins wrk and the servers.

Usage: Benchmarks/gateways.py [--seconds 4] [--rounds 5] [--connections 16] [--lone-requests 10000] [--json FILE]
Env: MESHAUTHZ_BIN (else a release build in .build-gw-release is made), ENVOY_BIN, NGINX_BIN.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
import gateways as gw  # noqa: E402
import yaml  # noqa: E402

FRONTEND = gw.spiffe("default", "frontend-sa")
XFCC = f"By={gw.GATEWAY_SPIFFE};Hash=5e1f0c0ffee0ddba11ad5eed0123456789abcdef0123456789abcdef01234567;URI={FRONTEND}"
PATH = "/api/users"
TARGETS = ["direct", "envoy", "envoy-rbac", "ext_authz", "ext_authz-mtls"]

UPSTREAM_CONF = """
worker_processes 1;
error_log ${NGINX_PREFIX}/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path ${NGINX_PREFIX}/client_body;
    proxy_temp_path ${NGINX_PREFIX}/proxy;
    fastcgi_temp_path ${NGINX_PREFIX}/fastcgi;
    uwsgi_temp_path ${NGINX_PREFIX}/uwsgi;
    scgi_temp_path ${NGINX_PREFIX}/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:${LISTEN_PORT};
        location / { return 200 "ok\\n"; }
    }
}
"""


def rbac_filter() -> dict:
    """api-policy as istiod would translate it, except that the principal is read from XFCC (the nearest element's
    URI=) because in this set-up the identity arrives in that header, not as the TLS peer."""
    principal = re.escape(FRONTEND)
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "ns[default]-policy[api-policy]-rule[0]": {
                        "permissions": [{"and_rules": {"rules": [
                            {"or_rules": {"rules": [
                                {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
                                {"header": {"name": ":method", "string_match": {"exact": "POST"}}},
                            ]}},
                            {"or_rules": {"rules": [{"url_path": {"path": {"prefix": "/api/"}}}]}},
                        ]}}],
                        "principals": [{"and_ids": {"ids": [{"or_ids": {"ids": [{"header": {
                            "name": "x-forwarded-client-cert",
                            "string_match": {"safe_regex": {
                                "regex": f"^(?:.*,)?(?:[^,]*;)?URI={principal}(?:;[^,]*)?$"}},
                        }}]}}]}}],
                    },
                },
            },
        },
    }


def http_filters(listener: dict) -> list:
    return listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]


def bootstrap(pki, upstream_port: int, pdp_port: int, pdp_tls_port: int) -> str:
    """One Envoy, four listeners, built from the examples as rendered."""
    xfcc = yaml.safe_load(gw.render(gw.EXAMPLES / "envoy" / "envoy-xfcc.yaml", dict(
        LISTEN_PORT=0, ADMIN_PORT=0, UPSTREAM_PORT=upstream_port, MESHAUTHZ_PORT=pdp_port,
        # wrk connects from 127.0.0.1: the trusted front proxy's chain (the first) is the one measured.
        TRUSTED_FRONT_PROXY_ADDRESS="127.0.0.1", TRUSTED_FRONT_PROXY_PREFIX_LEN=32)))
    mtls = yaml.safe_load(gw.render(gw.EXAMPLES / "envoy" / "envoy-mtls.yaml", dict(
        LISTEN_PORT=0, ADMIN_PORT=0, UPSTREAM_PORT=upstream_port, MESHAUTHZ_PORT=pdp_tls_port,
        INGRESS_CERT=pki["ingress"].cert, INGRESS_KEY=pki["ingress"].key, CLIENT_CA=pki["ca"].ca_path,
        GATEWAY_CERT=pki["gateway"].cert, GATEWAY_KEY=pki["gateway"].key, MESHAUTHZ_CA=pki["ca"].ca_path)))
    base = xfcc["static_resources"]["listeners"][0]
    router = http_filters(base)[-1]
    ext_plain = http_filters(base)[0]
    ext_tls = copy.deepcopy(http_filters(mtls["static_resources"]["listeners"][0])[0])
    ext_tls["typed_config"]["http_service"]["server_uri"]["cluster"] = "meshauthz_tls"
    tls_cluster = copy.deepcopy(next(c for c in mtls["static_resources"]["clusters"] if c["name"] == "meshauthz"))
    tls_cluster["name"] = tls_cluster["load_assignment"]["cluster_name"] = "meshauthz_tls"

    listeners = []
    for name, filters in (("envoy", [router]), ("envoy-rbac", [rbac_filter(), router]),
                          ("ext_authz", [ext_plain, router]), ("ext_authz-mtls", [ext_tls, router])):
        ls = copy.deepcopy(base)
        ls["name"] = name
        hcm = ls["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["stat_prefix"] = name.replace("-", "_")
        hcm["http_filters"] = copy.deepcopy(filters)
        listeners.append(ls)
    xfcc["static_resources"]["listeners"] = listeners
    xfcc["static_resources"]["clusters"].append(tls_cluster)
    return yaml.safe_dump(xfcc, sort_keys=False)


def family(pid: int) -> list[int]:
    """The process and its descendants (nginx's workers are children of its master)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def pin(pid: int, cpus: set[int] | None):
    if not cpus:
        return
    for p in family(pid):
        for tid in os.listdir(f"/proc/{p}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, its threads and its descendants, so far."""
    total = 0
    for p in family(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_wrk(out: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M):
        lat[pct] = float(val) * UNITS[unit] * 1e6  # microseconds
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_us": lat.get("50"), "p99_us": lat.get("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else None}


def wrk(port: int, seconds: float, connections: int, cpus: set[int] | None) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "2s",
           "-H", f"x-forwarded-client-cert: {XFCC}", "-H", "Host: api.example.com", f"http://127.0.0.1:{port}{PATH}"]
    if cpus:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = parse_wrk(out.stdout)
    if r["non2xx"]:
        raise RuntimeError(f"port {port}: {r['non2xx']} non-2xx answers:\n{out.stdout}")
    return r


class KeepAlive:
    """One keep-alive HTTP/1.1 connection sending the benchmark request and timing each answer."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = (f"GET {PATH} HTTP/1.1\r\nHost: api.example.com\r\n"
                        f"x-forwarded-client-cert: {XFCC}\r\n\r\n").encode()
        self.buf = b""

    def once(self) -> int:
        """Nanoseconds from sending the request to having read the whole answer."""
        start = time.perf_counter_ns()
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"not a 200: {head[:200]!r}")
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            rest += self.sock.recv(65536)
        self.buf = rest[n:]
        return time.perf_counter_ns() - start

    def close(self):
        self.sock.close()


def interleaved_latency(ports: dict[str, int], count: int) -> dict[str, dict]:
    """Lone requests, one at a time, taking the targets in turn (a burst of noise on the machine hits them all
    alike): p50/p99 per target over `count` requests each, in microseconds."""
    conns = {t: KeepAlive(p) for t, p in ports.items()}
    samples = {t: [] for t in ports}
    try:
        for t, c in conns.items():  # warm-up
            for _ in range(50):
                c.once()
        for _ in range(count):
            for t, c in conns.items():
                samples[t].append(c.once())
    finally:
        for c in conns.values():
            c.close()
    out = {}
    for t, s in samples.items():
        s.sort()
        out[t] = {"p50_us": s[len(s) // 2] / 1000, "p99_us": s[int(len(s) * 0.99)] / 1000,
                  "p999_us": s[int(len(s) * 0.999)] / 1000, "n": len(s)}
    return out


def find_meshauthz() -> str:
    env = os.environ.get("MESHAUTHZ_BIN")
    if env:
        return env
    scratch = ROOT / ".build-gw-release"
    subprocess.run(["swift", "build", "-c", "release", "--scratch-path", str(scratch), "--product", "meshauthz"],
                   cwd=ROOT, check=True, timeout=1800)
    bindir = subprocess.run(["swift", "build", "-c", "release", "--scratch-path", str(scratch), "--show-bin-path"],
                            cwd=ROOT, check=True, capture_output=True, text=True, timeout=120).stdout.strip()
    return str(pathlib.Path(bindir) / "meshauthz")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--lone-requests", type=int, default=10000, help="lone requests per target for the latency")
    ap.add_argument("--client-cpu", default="", help="pin wrk to these CPUs, e.g. 0 (default: no pinning)")
    ap.add_argument("--server-cpu", default="", help="pin Envoy, meshauthz and the upstream to these CPUs, e.g. 1")
    ap.add_argument("--meshauthz-arg", action="append", default=[],
                    help="extra argument for both `meshauthz serve` (repeatable), e.g. --meshauthz-arg=--engine=compiled")
    ap.add_argument("--json", default=str(ROOT / "Benchmarks" / "out" / "gateways.json"))
    a = ap.parse_args()
    for tool, path in (("wrk", shutil.which("wrk")), ("envoy", gw.envoy_path()), ("nginx", gw.nginx_path())):
        if not path:
            print(f"{tool} is missing (make deps)", file=sys.stderr)
            return 2
    ncpu = os.cpu_count() or 1
    client_cpus = {int(c) for c in a.client_cpu.split(",") if c != "" and int(c) < ncpu} or None
    server_cpus = {int(c) for c in a.server_cpu.split(",") if c != "" and int(c) < ncpu} or None
    binary = find_meshauthz()

    procs = []
    work = pathlib.Path(tempfile.mkdtemp(prefix="meshauthz-bench-"))
    try:
        ca = gw.Pki(work / "pki")
        pki = {"ca": ca,
               "gateway": ca.issue("gateway", uri=gw.GATEWAY_SPIFFE),
               "ingress": ca.issue("ingress", uri=gw.GATEWAY_SPIFFE, ips=("127.0.0.1",)),
               "pdp": ca.issue("pdp", uri=gw.PDP_SPIFFE, ips=("127.0.0.1",))}
        tmpl = work / "upstream.conf.in"
        tmpl.write_text(UPSTREAM_CONF)
        upstream = gw.Nginx(tmpl, {}, work / "upstream")
        procs.append(upstream)
        policies = ROOT / "policies"
        pdp = gw.Pdp(binary, policies, args=a.meshauthz_arg)
        procs.append(pdp)
        targets = list(TARGETS)
        try:
            pdp_tls = gw.Pdp(binary, policies, tls=(ca, pki["pdp"], pki["gateway"]),
                             args=["--trust-xfcc-identity", gw.GATEWAY_SPIFFE, *a.meshauthz_arg])
            procs.append(pdp_tls)
            tls_port = pdp_tls.port
        except gw.GatewayError as e:
            print(f"meshauthz could not serve mTLS, ext_authz-mtls is left out:\n{e}", file=sys.stderr)
            targets.remove("ext_authz-mtls")
            tls_port = gw.free_port()
        envoy = gw.Envoy(bootstrap(pki, upstream.port, pdp.port, tls_port), work / "envoy", concurrency=1)
        procs.append(envoy)
        for p in procs:
            pin(p.pid, server_cpus)
        ports = {"direct": upstream.port, **envoy.listeners}

        # every target answers the benchmark request with 200, and the authorizing ones deny another caller
        for t in targets:
            r = gw.send(ports[t], "GET", PATH, {"x-forwarded-client-cert": XFCC})
            assert r.status == 200, (t, r)
            if t in ("envoy-rbac", "ext_authz", "ext_authz-mtls"):
                other = XFCC.replace("frontend-sa", "other-sa")
                r = gw.send(ports[t], "GET", PATH, {"x-forwarded-client-cert": other})
                assert r.status == 403, (t, r)

        roles = {"envoy": [envoy], "meshauthz": [p for p in procs if isinstance(p, gw.Pdp)], "upstream": [upstream]}

        def measure(t, connections):
            """One wrk run, with the CPU time each process spent per request meanwhile."""
            before = {r: sum(cpu_seconds(p.pid) for p in ps) for r, ps in roles.items()}
            res = wrk(ports[t], a.seconds, connections, client_cpus)
            n = res["rps"] * a.seconds
            for r, ps in roles.items():
                res[f"cpu_{r}_us"] = (sum(cpu_seconds(p.pid) for p in ps) - before[r]) / n * 1e6
            return res

        results = {t: [] for t in targets}
        for t in targets:  # warm-up
            wrk(ports[t], 1, a.connections, client_cpus)
        for rnd in range(a.rounds):
            for t in targets:
                results[t].append(measure(t, a.connections))
            print(f"round {rnd + 1}/{a.rounds} done", file=sys.stderr)
        lone = interleaved_latency({t: ports[t] for t in targets}, a.lone_requests)

        def med(t, key):
            return statistics.median(x[key] for x in results[t])

        summary = {t: {"rps": med(t, "rps"), "p50_us": med(t, "p50_us"), "p99_us": med(t, "p99_us"),
                       **{f"cpu_{r}_us": med(t, f"cpu_{r}_us") for r in roles},
                       "lone_p50_us": lone[t]["p50_us"], "lone_p99_us": lone[t]["p99_us"],
                       "lone_p999_us": lone[t]["p999_us"]}
                   for t in targets}
        rb = summary["envoy-rbac"]
        print(f"\nThroughput: wrk -t1 -c{a.connections}, {a.seconds:g} s x {a.rounds} interleaved rounds, median. "
              f"Lone requests: one at a time on a keep-alive connection per target, the targets in turn, "
              f"{a.lone_requests} each. CPUs: wrk {a.client_cpu or 'any'}, servers {a.server_cpu or 'any'}.\n")
        print(f"| target | req/s (c={a.connections}) | vs RBAC | p50 (c={a.connections}) | p99 (c={a.connections}) "
              f"| lone p50 | lone p99 | lone p50 added vs RBAC | lone p99 added vs RBAC |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for t in targets:
            s = summary[t]
            print(f"| {t} | {s['rps']:,.0f} | {s['rps'] / rb['rps']:.0%} | {s['p50_us']:,.0f} µs | {s['p99_us']:,.0f} µs "
                  f"| {s['lone_p50_us']:,.0f} µs | {s['lone_p99_us']:,.0f} µs "
                  f"| {s['lone_p50_us'] - rb['lone_p50_us']:+,.0f} µs | {s['lone_p99_us'] - rb['lone_p99_us']:+,.0f} µs |")
        print(f"\nCPU time per request under c={a.connections} (user+system of each process, from /proc):\n")
        print("| target | Envoy | meshauthz | upstream | total |")
        print("|---|---:|---:|---:|---:|")
        for t in targets:
            s = summary[t]
            cpus = [s[f"cpu_{r}_us"] for r in roles]
            print(f"| {t} | " + " | ".join(f"{c:.0f} µs" for c in cpus) + f" | {sum(cpus):.0f} µs |")
        print()
        for t in [x for x in ("ext_authz", "ext_authz-mtls") if x in targets]:
            s = summary[t]
            keep = s["rps"] / rb["rps"]
            added = s["lone_p99_us"] - rb["lone_p99_us"]
            print(f"{t}: keeps {keep:.0%} of the RBAC path's throughput (target >= 60%: "
                  f"{'met' if keep >= 0.6 else 'NOT met'}); adds {added:+.0f} µs at p99 to a lone request "
                  f"(target <= 300 µs: {'met' if added <= 300 else 'NOT met'})")
        out = pathlib.Path(a.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"config": vars(a), "summary": summary, "runs": results, "lone": lone,
                                   "envoy_version": subprocess.run([gw.envoy_path(), "--version"], capture_output=True,
                                                                   text=True).stdout.strip(),
                                   "meshauthz": binary}, indent=1))
        print(f"\nraw results: {out}")
        return 0
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
