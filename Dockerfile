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
WORKDIR /build

# Dependencies first, in their own layer: it is rebuilt only when Cargo.toml or Cargo.lock change. Cargo wants every
# target the manifest declares to exist, so the other binary (auth-api) and the benchmarks get placeholders too;
# neither is built here.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > src/bin/auth_api.rs \
    && echo 'fn main() {}' > benches/sweep.rs \
    && echo 'fn main() {}' > benches/auth.rs \
    && cargo build --release --locked --bin jwt-token-cleaner \
    && rm -rf src

# Then the code. touch: COPY keeps the files' own times, which may be older than the placeholder build.
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin jwt-token-cleaner \
    && cp target/release/jwt-token-cleaner /jwt-token-cleaner

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
