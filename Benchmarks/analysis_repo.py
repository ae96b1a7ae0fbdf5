#!/usr/bin/env python3
"""Writes a GitOps repo for the lint/graph benchmark (BENCHMARKS.md, "Policy analysis"): NAMESPACES x SERVICES
services, each with a Namespace, ServiceAccount, Deployment and Service manifest (workloads/), and services.yaml
listing, for each service, three callers (two of its namespace, one of the next namespace) with methods and paths
for one of them. `meshauthz generate` turns services.yaml into the policies (one ALLOW policy and one
DestinationRule per service, an allow-nothing policy per namespace).

Usage: analysis_repo.py DIR [NAMESPACES] [SERVICES]   (default 100 x 10 = 1,000 services)
"""
import pathlib
import sys


def main():
    out = pathlib.Path(sys.argv[1])
    namespaces = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    (out / "workloads").mkdir(parents=True, exist_ok=True)
    services = ["services:"]
    for n in range(namespaces):
        ns = f"tenant-{n:03d}"
        docs = [f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"]
        for s in range(per):
            name = f"svc-{n:03d}-{s:02d}"
            docs.append(f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}-sa, namespace: {ns}}}\n")
            docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, version: v1}}}}
    spec:
      serviceAccountName: {name}-sa
      containers: [{{name: app, image: example/{name}:1, ports: [{{name: http, containerPort: 8080}}]}}]
""")
            docs.append(f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n"
                        f"spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 80, targetPort: http}}]}}\n")
            same1 = f"svc-{n:03d}-{(s + 1) % per:02d}"
            same2 = f"svc-{n:03d}-{(s + 2) % per:02d}"
            other = f"svc-{(n + 1) % namespaces:03d}-{s:02d}"
            services.append(f"- name: {name}\n  namespace: {ns}\n  serviceAccount: {name}-sa\n  port: 8080\n"
                            f"  allowedCallers:\n  - {same1}\n  - {same2}\n"
                            f"  - {{service: {other}, methods: [GET, POST], paths: [\"/api/*\", \"/v1/{{*}}/items\"]}}")
        (out / "workloads" / f"{ns}.yaml").write_text("---\n".join(docs))
    (out / "services.yaml").write_text("\n".join(services) + "\n")


if __name__ == "__main__":
    main()
