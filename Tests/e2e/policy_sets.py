"""Small policy sets the endpoint tests start servers with."""

FRONTEND = "cluster.local/ns/default/sa/frontend-sa"
XFCC_FRONTEND = (
    "By=spiffe://cluster.local/ns/default/sa/api-sa;"
    "Hash=0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6;"
    "URI=spiffe://" + FRONTEND
)


def authz(name, spec, namespace="default", annotations=None):
    meta = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": meta, "spec": spec}


def peer_auth(name, mode, namespace="default", selector=None):
    spec = {"mtls": {"mode": mode}}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# api-policy (rule 0) plus a few rules the gateway tests use.
API_POLICY = authz("api-policy", {
    "selector": {"matchLabels": {"app": "api-service"}},
    "action": "ALLOW",
    "rules": [
        {"from": [{"source": {"principals": [FRONTEND]}}],
         "to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/api/*"]}}]},
        {"to": [{"operation": {"paths": ["/tenant/*"]}}],
         "when": [{"key": "request.headers[x-tenant]", "values": ["acme"]}]},
        {"to": [{"operation": {"hosts": ["shop.example.com"], "paths": ["/shop/*"]}}]},
        {"to": [{"operation": {"paths": ["/raw/a%2Fb"]}}]},
    ],
})
DENY_ADMIN = authz("deny-admin", {
    "selector": {"matchLabels": {"app": "api-service"}},
    "action": "DENY",
    "rules": [{"to": [{"operation": {"paths": ["/api/admin/*"]}}]}],
})
AUDIT_ALL = authz("audit-orders", {
    "action": "AUDIT",
    "rules": [{"to": [{"operation": {"paths": ["/api/orders"]}}]}],
})
GATEWAY_SET = [API_POLICY, DENY_ADMIN, AUDIT_ALL]

ALLOW_NOTHING = authz("allow-nothing", {})
ALLOW_ALL = authz("allow-all", {"rules": [{}]})

CHECK_ALLOWED = {
    "source": {"principal": FRONTEND, "mtls": True, "ip": "10.0.0.5"},
    "destination": {"namespace": "default", "labels": {"app": "api-service", "version": "v1"}, "port": 8080},
    "request": {"method": "GET", "path": "/api/users?x=1", "host": "api.example.com"},
}
CHECK_DENIED = {
    "source": {"principal": "cluster.local/ns/default/sa/other-sa", "mtls": True},
    "destination": {"namespace": "default", "labels": {"app": "api-service"}, "port": 8080},
    "request": {"method": "GET", "path": "/api/users"},
}
