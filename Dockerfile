# syntax=docker/dockerfile:1
# jwt-token-cleaner: an FC 3.0 custom-container function listening on port 9000.
#
#   docker build --platform linux/amd64 -t jwt-token-cleaner .
#   docker run --rm -p 9000:9000 -e DB_URI=... -e DB_NAME=... jwt-token-cleaner
#
# The builder links a static musl binary, so the runtime image is distroless/static: no shell, no package manager,
# CA certificates included (TLS to MongoDB Atlas or the HTTP API), a non-root user. About 2 MB plus the binary.

ARG RUST_VERSION=1.95

FROM --platform=linux/amd64 rust:${RUST_VERSION}-alpine AS builder
RUN apk add --no-cache musl-dev gcc
# cargo-auditable embeds the binary's dependency list (crate names and versions, under 4 kB) in a `.dep-v0`
# section, so scanners (syft, trivy, grype) see the crates inside the static binary; pinned like scripts/supply-chain.sh.
ARG CARGO_AUDITABLE_VERSION=0.7.7
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo install --locked cargo-auditable --version ${CARGO_AUDITABLE_VERSION}
WORKDIR /build

# The workspace as it is: the cleaner (src/, benches/) and its member crates (crates/: the shared crate it depends
# on, and auth-api and the test support, whose manifests cargo reads to load the workspace). Only the cleaner is
# built, and none of auth-api's dependencies (argon2, redis, axum-server) are compiled. The cache mounts keep the
# registry and the compiled dependencies between builds, so a change to src/ rebuilds the cleaner alone.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY benches ./benches
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo auditable build --release --locked -p jwt-token-cleaner --bin jwt-token-cleaner --target x86_64-unknown-linux-musl \
    && cp target/x86_64-unknown-linux-musl/release/jwt-token-cleaner /jwt-token-cleaner

FROM --platform=linux/amd64 gcr.io/distroless/static-debian12:nonroot
COPY --from=builder /jwt-token-cleaner /usr/local/bin/jwt-token-cleaner
USER nonroot:nonroot
ENV PORT=9000 \
    LOG_FORMAT=json
EXPOSE 9000
# No shell in this image: the binary checks itself (GET /health on the local port, exit 0 or 1).
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/jwt-token-cleaner", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/jwt-token-cleaner"]
CMD ["serve"]
