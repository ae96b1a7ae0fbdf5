"""Test tokens and key sets, made with `cryptography` (the same library the gateway tests' CA uses).

`Issuer(alg)` holds a fresh key; `.jwks()` is its public JWKS (JSON text for a RequestAuthentication's `jwks`),
`.token(claims)` a signed compact JWT.
"""
import base64
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_bytes(n: int, length: int | None = None) -> bytes:
    length = length or (n.bit_length() + 7) // 8
    return n.to_bytes(length, "big")


class Issuer:
    def __init__(self, alg="RS256", kid="k1", iss="https://issuer.test"):
        self.alg, self.kid, self.iss = alg, kid, iss
        if alg.startswith(("RS", "PS")):
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "ES384":
            self.key = ec.generate_private_key(ec.SECP384R1())
        elif alg == "EdDSA":
            self.key = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)

    def jwk(self) -> dict:
        pub = self.key.public_key()
        base = {"kid": self.kid, "alg": self.alg, "use": "sig"}
        if self.alg.startswith(("RS", "PS")):
            numbers = pub.public_numbers()
            return {**base, "kty": "RSA", "n": b64url(_int_bytes(numbers.n)), "e": b64url(_int_bytes(numbers.e))}
        if self.alg.startswith("ES"):
            numbers = pub.public_numbers()
            size = 32 if self.alg == "ES256" else 48
            crv = "P-256" if self.alg == "ES256" else "P-384"
            return {**base, "kty": "EC", "crv": crv, "x": b64url(_int_bytes(numbers.x, size)),
                    "y": b64url(_int_bytes(numbers.y, size))}
        raw = pub.public_bytes_raw()
        return {**base, "kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}

    def jwks(self) -> str:
        return json.dumps({"keys": [self.jwk()]})

    def token(self, claims: dict, header: dict | None = None) -> str:
        head = {"alg": self.alg, "typ": "JWT", "kid": self.kid, **(header or {})}
        payload = {"iss": self.iss, **claims}
        signing = (b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(payload).encode())).encode()
        return signing.decode() + "." + b64url(self._sign(signing))

    def _sign(self, data: bytes) -> bytes:
        digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}.get(self.alg[-3:], hashes.SHA256())
        if self.alg.startswith("RS"):
            return self.key.sign(data, padding.PKCS1v15(), digest)
        if self.alg.startswith("PS"):
            return self.key.sign(data, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
        if self.alg.startswith("ES"):
            r, s = utils.decode_dss_signature(self.key.sign(data, ec.ECDSA(digest)))
            size = 32 if self.alg == "ES256" else 48
            return _int_bytes(r, size) + _int_bytes(s, size)
        return self.key.sign(data)


def request_authentication(name, namespace, selector, rules):
    return {"apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": selector}, "jwtRules": rules}}


def allow_policy(name, namespace, selector, rules):
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": selector}, "action": "ALLOW", "rules": rules}}
