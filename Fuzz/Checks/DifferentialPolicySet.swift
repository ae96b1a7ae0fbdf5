/// The fixed policy set of `DifferentialCheck`: the example mesh (`policies/`) and the policies of
/// a dozen fixtures chosen for their variety (prefix/suffix principals, CIDRs, hosts, notPaths, path
/// templates, headers, nested claims, connection and destination conditions, dry-run, AUDIT, CUSTOM,
/// workload PeerAuthentication), renamed where names collide. Kept in Swift so the fuzzer needs no files.
enum DifferentialPolicySet {
    static let yaml = #"""
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata:
          name: default
          namespace: istio-system
        spec:
          mtls:
            mode: STRICT
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: allow-nothing
          namespace: auth
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: auth-service
          namespace: auth
        spec:
          selector:
            matchLabels:
              app: auth-service
          action: ALLOW
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/edge/sa/gateway-sa
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: allow-nothing
          namespace: billing
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: billing-service
          namespace: billing
        spec:
          selector:
            matchLabels:
              app: billing-service
          action: ALLOW
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/edge/sa/gateway-sa
                - cluster.local/ns/core/sa/order-sa
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: allow-nothing
          namespace: core
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: user-service
          namespace: core
        spec:
          selector:
            matchLabels:
              app: user-service
          action: ALLOW
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/edge/sa/gateway-sa
                - cluster.local/ns/auth/sa/auth-sa
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: order-service
          namespace: core
        spec:
          selector:
            matchLabels:
              app: order-service
          action: ALLOW
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/edge/sa/gateway-sa
                - cluster.local/ns/billing/sa/billing-sa
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: notification-service
          namespace: core
        spec:
          selector:
            matchLabels:
              app: notification-service
          action: ALLOW
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/core/sa/order-sa
                - cluster.local/ns/billing/sa/billing-sa
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata:
          name: default
          namespace: default
        spec:
          mtls:
            mode: STRICT
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: api-policy
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          action: ALLOW
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/default/sa/frontend-sa
            to:
            - operation:
                methods:
                - GET
                - POST
                paths:
                - /api/*
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: allow-nothing
          namespace: edge
        spec: {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: api-gateway
          namespace: edge
        spec:
          selector:
            matchLabels:
              app: api-gateway
          action: ALLOW
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: httpbin-1
          namespace: foo
        spec:
          selector:
            matchLabels:
              app: httpbin
              version: v1
          rules:
          - from:
            - source:
                serviceAccounts:
                - my-ns/my-sa
                - sa-only
                notServiceAccounts:
                - my-ns/my-sa-not
                - sa-not-only
          - from:
            - source:
                principals:
                - principal
                - principal-prefix-*
                - '*-suffix-principal'
                - '*'
                requestPrincipals:
                - requestPrincipals
                - requestPrincipals-prefix-*
                - '*-suffix-requestPrincipals'
                - '*'
                namespaces:
                - ns
                - ns-prefix-*
                - '*-ns-suffix'
                - '*'
                ipBlocks:
                - 1.2.3.4
                - 5.6.0.0/16
                remoteIpBlocks:
                - 1.2.3.4
                - 5.6.0.0/16
                notPrincipals:
                - not-principal
                - not-principal-prefix-*
                - '*-not-suffix-principal'
                - '*'
                notRequestPrincipals:
                - not-requestPrincipals
                - not-requestPrincipals-prefix-*
                - '*-not-suffix-requestPrincipals'
                - '*'
                notNamespaces:
                - not-ns
                - not-ns-prefix-*
                - '*-not-ns-suffix'
                - '*'
                notIpBlocks:
                - 9.0.0.1
                - 9.2.0.0/16
                notRemoteIpBlocks:
                - 9.0.0.1
                - 9.2.0.0/16
            to:
            - operation:
                methods:
                - method
                - method-prefix-*
                - '*-suffix-method'
                - '*'
                hosts:
                - exact.com
                - '*.suffix.com'
                - prefix.*
                - '*'
                ports:
                - '80'
                - '90'
                paths:
                - /exact
                - /prefix/*
                - '*/suffix'
                - '*'
                - /path/template/{*}
                - /{**}/path/template
                notMethods:
                - not-method
                - not-method-prefix-*
                - '*-not-suffix-method'
                - '*'
                notHosts:
                - not-exact.com
                - '*.not-suffix.com'
                - not-prefix.*
                - '*'
                notPorts:
                - '8000'
                - '9000'
                notPaths:
                - /not-exact
                - /not-prefix/*
                - '*/not-suffix'
                - '*'
                - /not-path/template/{*}
                - /{**}/not-path/template
            when:
            - key: request.headers[X-header]
              values:
              - header
              - header-prefix-*
              - '*-suffix-header'
              - '*'
              notValues:
              - not-header
              - not-header-prefix-*
              - '*-not-suffix-header'
              - '*'
            - key: source.ip
              values:
              - 10.10.10.10
              - 192.168.10.0/24
              notValues:
              - 90.10.10.10
              - 90.168.10.0/24
            - key: remote.ip
              values:
              - 10.10.10.10
              - 192.168.10.0/24
              notValues:
              - 90.10.10.10
              - 90.168.10.0/24
            - key: source.namespace
              values:
              - ns
              - ns-prefix-*
              - '*-ns-suffix'
              - '*'
              notValues:
              - not-ns
              - not-ns-prefix-*
              - '*-not-ns-suffix'
              - '*'
            - key: source.principal
              values:
              - principal
              - principal-prefix-*
              - '*-suffix-principal'
              - '*'
              notValues:
              - not-principal
              - not-principal-prefix-*
              - '*-not-suffix-principal'
              - '*'
            - key: request.auth.principal
              values:
              - requestPrincipals
              - requestPrincipals-prefix-*
              - '*-suffix-requestPrincipals'
              - '*'
              - https://example.com/*
              notValues:
              - not-requestPrincipals
              - not-requestPrincipals-prefix-*
              - '*-not-suffix-requestPrincipals'
              - '*'
            - key: request.auth.audiences
              values:
              - audiences
              - audiences-prefix-*
              - '*-suffix-audiences'
              - '*'
              notValues:
              - not-audiences
              - not-audiences-prefix-*
              - '*-not-suffix-audiences'
              - '*'
            - key: request.auth.presenter
              values:
              - presenter
              - presenter-prefix-*
              - '*-suffix-presenter'
              - '*'
              notValues:
              - not-presenter
              - not-presenter-prefix-*
              - '*-not-suffix-presenter'
              - '*'
            - key: request.auth.claims[iss]
              values:
              - iss
              - iss-prefix-*
              - '*-suffix-iss'
              - '*'
              notValues:
              - not-iss
              - not-iss-prefix-*
              - '*-not-suffix-iss'
              - '*'
            - key: request.auth.claims[nested1][nested2]
              values:
              - nested
              - nested-prefix-*
              - '*-suffix-nested'
              - '*'
              notValues:
              - not-nested
              - not-nested-prefix-*
              - '*-not-suffix-nested'
              - '*'
            - key: destination.ip
              values:
              - 10.10.10.10
              - 192.168.10.0/24
              notValues:
              - 90.10.10.10
              - 90.168.10.0/24
            - key: destination.port
              values:
              - '91'
              - '92'
              notValues:
              - '9001'
              - '9002'
            - key: connection.sni
              values:
              - exact.com
              - '*.suffix.com'
              - prefix.*
              - '*'
              notValues:
              - not-exact.com
              - '*.not-suffix.com'
              - not-prefix.*
              - '*'
            - key: experimental.envoy.filters.a.b[c]
              values:
              - exact
              - prefix-*
              - '*-suffix'
              - '*'
              notValues:
              - not-exact
              - not-prefix-*
              - '*-not-suffix'
              - '*'
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: ops-and-batch
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/ops/*
                - '*/sa/batch-sa'
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: internal-only
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - from:
            - source:
                ipBlocks:
                - 10.0.0.0/24
                - 192.168.1.7
                notIpBlocks:
                - 10.0.0.13
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: partner-clients
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - from:
            - source:
                remoteIpBlocks:
                - 203.0.113.0/24
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: api-host
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - to:
            - operation:
                hosts:
                - api.example.com
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: all-but-admin
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - to:
            - operation:
                notPaths:
                - /admin*
                - '*.env'
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: templated
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - to:
            - operation:
                paths:
                - /users/{*}/profile
                - /static/{**}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: tenants
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - when:
            - key: request.headers[X-Tenant]
              values:
              - acme
              - beta-*
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: admins
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - from:
            - source:
                requestPrincipals:
                - https://idp.example.com/*
            when:
            - key: request.auth.claims[groups]
              values:
              - admin
            - key: request.auth.claims[realm_access][roles]
              values:
              - editor
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: tls-edge
          namespace: edge
        spec:
          selector:
            matchLabels:
              app: edge-proxy
          rules:
          - when:
            - key: connection.sni
              values:
              - '*.example.com'
            - key: destination.port
              values:
              - '8443'
            - key: destination.ip
              values:
              - 10.0.0.0/16
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: deny-headers-dry-run
          namespace: default
          annotations:
            istio.io/dry-run: 'true'
        spec:
          selector:
            matchLabels:
              app: api-service
          action: DENY
          rules:
          - to:
            - operation:
                paths:
                - /headers
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: deny-headers-enforced
          namespace: default
          annotations:
            istio.io/dry-run: 'false'
        spec:
          selector:
            matchLabels:
              app: httpbin
          action: DENY
          rules:
          - to:
            - operation:
                paths:
                - /headers
        ---
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata:
          name: default-25
          namespace: default
        spec:
          mtls:
            mode: STRICT
        ---
        apiVersion: security.istio.io/v1beta1
        kind: PeerAuthentication
        metadata:
          name: legacy-permissive
          namespace: default
        spec:
          selector:
            matchLabels:
              app: legacy-app
          mtls:
            mode: PERMISSIVE
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: ext-authz-admin
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          action: CUSTOM
          provider:
            name: my-ext-authz
          rules:
          - to:
            - operation:
                paths:
                - /admin/*
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: allow-frontend
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - from:
            - source:
                principals:
                - cluster.local/ns/default/sa/frontend-sa
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: known-callers
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          rules:
          - from:
            - source:
                serviceAccounts:
                - frontend-sa
                - monitoring/prometheus
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: audit-api
          namespace: default
        spec:
          selector:
            matchLabels:
              app: api-service
          action: AUDIT
          rules:
          - {}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: audit-logins
          namespace: default
        spec:
          action: AUDIT
          rules:
          - to:
            - operation:
                paths:
                - /login
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: billing-get
          namespace: default
        spec:
          selector:
            matchLabels:
              app: billing
          rules:
          - to:
            - operation:
                methods:
                - GET
        """#
}
