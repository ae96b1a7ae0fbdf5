"""jwksUri: key sets fetched by meshauthz over HTTPS from a local server whose certificate a CA generated here
signs (`serve --jwks-ca`), refreshed when a token names an unknown key (rate-limited), kept when a fetch fails;
a key set that never loaded fails its issuer's tokens and /readyz and the metrics say which issuer."""
import http.server
import json
import ssl
import threading

import pytest
import yaml

from gateways import Pki
from jwt_tokens import Issuer, allow_policy, request_authentication
from test_jwt import APP, NS, gateway
from test_reload import eventually, metric


class JWKSServer:
    """HTTPS on 127.0.0.1 serving `self.body` at /keys, counting the GETs."""

    def __init__(self, pki: Pki, body: str):
        self.body, self.hits, self.status = body, 0, 200
        self.configuration = None  # the body of /.well-known/openid-configuration, when served
        leaf = pki.issue("jwks", dns=("localhost",), ips=("127.0.0.1",))
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                if self.path == "/.well-known/openid-configuration" and outer.configuration is not None:
                    data = outer.configuration.encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                data = outer.body.encode()
                self.send_response(outer.status if self.path == "/keys" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*leaf.pair)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self):
        return f"https://localhost:{self.httpd.server_address[1]}"

    @property
    def url(self):
        return self.origin + "/keys"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


@pytest.fixture
def jwks_server(pki):
    servers = []

    def start(body):
        s = JWKSServer(pki, body)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def serve(start_server, tmp_path, issuer_url, uri, args=()):
    """A RequestAuthentication for `issuer_url` with `jwksUri: uri`, or with neither `jwks` nor `jwksUri` (OpenID
    discovery) when `uri` is None."""
    d = tmp_path / "p"
    d.mkdir(exist_ok=True)
    rule = {"issuer": issuer_url, "timeout": "2s"} | ({"jwksUri": uri} if uri else {})
    docs = [request_authentication("jwt", NS, APP, [rule]),
            allow_policy("users", NS, APP, [{"from": [{"source": {"requestPrincipals": ["*"]}}]}])]
    (d / "policies.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return start_server(policies_dir=d, args=["--reload-settle", "0", *args])


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_keys_from_an_https_jwks_uri(start_server, tmp_path, pki, jwks_server):
    issuer = Issuer("RS256", kid="k1")
    keys = jwks_server(issuer.jwks())
    s = serve(start_server, tmp_path, issuer.iss, keys.url, ["--jwks-ca", str(pki.ca_path)])
    assert gateway(s, headers=bearer(issuer.token({"sub": "alice"}))).status_code == 200
    ready = s.readyz()
    assert ready["jwks"] == [{"uri": keys.url, "issuers": [issuer.iss], "status": "ok", "keys": 1, "lastError": None}], ready
    assert metric(s, "meshauthz_jwks_keys_loaded", issuer=issuer.iss) == 1
    assert metric(s, "meshauthz_jwks_fetches_total", result="success") >= 1
    stranger = Issuer("RS256", kid="k1")
    r = gateway(s, headers=bearer(stranger.token({"sub": "alice"})))
    assert r.status_code == 401 and r.text == "Jwt verification fails"


def test_an_untrusted_certificate_fails_the_issuer_and_says_so(start_server, tmp_path, pki, jwks_server):
    issuer = Issuer("ES256")
    keys = jwks_server(issuer.jwks())
    s = serve(start_server, tmp_path, issuer.iss, keys.url)  # no --jwks-ca: the system store does not know our CA
    r = gateway(s, headers=bearer(issuer.token({"sub": "alice"})))
    assert r.status_code == 401, r.text
    entry = s.readyz()["jwks"][0]
    assert entry["status"] == "failing" and "not trusted" in entry["lastError"], entry
    assert metric(s, "meshauthz_jwks_keys_loaded", issuer=issuer.iss) == 0
    assert metric(s, "meshauthz_jwks_fetches_total", result="failure") >= 1
    assert gateway(s).status_code == 403  # no token: RBAC decides, as ever


def test_an_unknown_kid_refreshes_the_keys_at_a_bounded_rate(start_server, tmp_path, pki, jwks_server):
    old, new = Issuer("ES256", kid="old"), Issuer("ES256", kid="new")
    keys = jwks_server(old.jwks())
    s = serve(start_server, tmp_path, old.iss, keys.url,
              ["--jwks-ca", str(pki.ca_path), "--jwks-min-refresh-interval", "0.1"])
    assert gateway(s, headers=bearer(old.token({"sub": "a"}))).status_code == 200
    # the issuer rotates to a new key: the first token with its kid makes meshauthz fetch again
    keys.body = json.dumps({"keys": [json.loads(old.jwks())["keys"][0], json.loads(new.jwks())["keys"][0]]})
    token = new.token({"sub": "b"})
    assert eventually(lambda: gateway(s, headers=bearer(token)).status_code == 200, timeout=10), s.log
    assert gateway(s, headers=bearer(old.token({"sub": "a"}))).status_code == 200


def test_made_up_kids_do_not_hammer_the_issuer(start_server, tmp_path, pki, jwks_server):
    issuer = Issuer("ES256", kid="k1")
    keys = jwks_server(issuer.jwks())
    s = serve(start_server, tmp_path, issuer.iss, keys.url,
              ["--jwks-ca", str(pki.ca_path), "--jwks-min-refresh-interval", "600"])
    before = keys.hits
    for i in range(30):
        r = gateway(s, headers=bearer(issuer.token({"sub": "x"}, header={"kid": f"made-up-{i}"})))
        assert r.status_code == 401 and r.text == "Jwks doesn't have key to match kid or alg from Jwt"
    assert keys.hits - before <= 1, keys.hits - before


def test_a_failed_refresh_keeps_the_keys(start_server, tmp_path, pki, jwks_server):
    issuer = Issuer("EdDSA", kid="k1")
    keys = jwks_server(issuer.jwks())
    s = serve(start_server, tmp_path, issuer.iss, keys.url,
              ["--jwks-ca", str(pki.ca_path), "--jwks-min-refresh-interval", "0.1", "--jwks-retry-interval", "0.1"])
    good = issuer.token({"sub": "a"})
    assert gateway(s, headers=bearer(good)).status_code == 200
    keys.status = 500
    failures = metric(s, "meshauthz_jwks_fetches_total", result="failure")
    unknown = bearer(issuer.token({"sub": "x"}, header={"kid": "other"}))

    def refresh_failed():  # each unknown kid asks for a refresh (granted once 0.1 s passed since the last)
        gateway(s, headers=unknown)
        return metric(s, "meshauthz_jwks_fetches_total", result="failure") > failures

    assert eventually(refresh_failed, timeout=10), s.log
    assert s.readyz()["jwks"][0]["status"] == "stale"
    assert gateway(s, headers=bearer(issuer.token({"sub": "a2"}))).status_code == 200


def test_openid_discovery_finds_the_key_set_as_istiod_does(start_server, tmp_path, pki, jwks_server):
    """Neither `jwks` nor `jwksUri`: the issuer's /.well-known/openid-configuration names the key set (`jwks_uri`),
    which is then fetched, refreshed and reported like any other."""
    keys = jwks_server("")
    issuer = Issuer("RS256", kid="k1", iss=keys.origin + "/")  # a trailing slash is dropped before the suffix
    keys.body = issuer.jwks()
    keys.configuration = json.dumps({"issuer": issuer.iss, "jwks_uri": keys.url})
    s = serve(start_server, tmp_path, issuer.iss, None, ["--jwks-ca", str(pki.ca_path)])
    assert gateway(s, headers=bearer(issuer.token({"sub": "alice"}))).status_code == 200
    entry = s.readyz()["jwks"][0]
    assert entry["uri"] == keys.origin + "/.well-known/openid-configuration" and entry["status"] == "ok", entry
    assert entry["keys"] == 1 and entry["issuers"] == [issuer.iss], entry
    stranger = Issuer("RS256", kid="k1", iss=issuer.iss)
    assert gateway(s, headers=bearer(stranger.token({"sub": "alice"}))).status_code == 401


@pytest.mark.parametrize("configuration, error", [
    ('{"issuer": "x"}', "no jwks_uri string"),
    ('{"jwks_uri": 42}', "no jwks_uri string"),
    ("not json", "not a JSON object"),
    ('{"jwks_uri": "ftp://elsewhere/keys"}', "not an http(s) URL"),
])
def test_a_configuration_that_names_no_key_set_fails_the_issuer(start_server, tmp_path, pki, jwks_server,
                                                               configuration, error):
    keys = jwks_server("")
    issuer = Issuer("ES256", iss=keys.origin)
    keys.body = issuer.jwks()
    keys.configuration = configuration
    s = serve(start_server, tmp_path, issuer.iss, None, ["--jwks-ca", str(pki.ca_path)])
    r = gateway(s, headers=bearer(issuer.token({"sub": "alice"})))
    assert r.status_code == 401, r.text  # istiod's placeholder key: no token verifies
    entry = s.readyz()["jwks"][0]
    assert entry["status"] == "failing" and error in entry["lastError"], entry
    assert gateway(s).status_code == 403  # no token: RBAC decides, as ever
