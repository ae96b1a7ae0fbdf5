# syntax=docker/dockerfile:1
# meshauthz image: `docker build -t meshauthz:latest .`
#
# Build stage: the official Swift image; the binary links the Swift runtime and Foundation statically
# (`make dist` runs the same command), so the runtime stage needs no toolchain.
FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmicrohttpd-dev libgnutls28-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN swift build -c release --static-swift-stdlib --product meshauthz \
 && install -m 0755 "$(swift build -c release --show-bin-path)/meshauthz" /meshauthz

# Runtime stage: Debian slim with exactly the shared libraries the binary names (readelf -d: NEEDED), besides
# libc6; Tests/e2e/test_dist.py holds this list to the binary's.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmicrohttpd12 libgnutls30 libstdc++6 libgcc-s1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /meshauthz /usr/local/bin/meshauthz
COPY policies /policies
# Not root: any fixed non-zero uid (Kubernetes' runAsNonRoot checks the number).
USER 65532:65532
VOLUME /policies
EXPOSE 8080 8081
# Plain bash (no curl in the slim image): GET /readyz on the health listener, healthy on 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8081 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/meshauthz"]
# The bundled example mesh; mount your policy directory over /policies. Behind mTLS, add --tls-cert,
# --tls-key and --client-ca (examples/kubernetes/deployment.yaml has the whole set).
CMD ["serve", "--policies=/policies", "--listen=0.0.0.0:8080", "--health-listen=0.0.0.0:8081", \
     "--root-namespace=istio-system", "--trust-domain=cluster.local"]
