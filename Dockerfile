# No `# syntax=` line: the frontend built into BuildKit reads this file, so a build fetches nothing
# but the two base images below (and crates), which matters where Docker Hub is blocked.

# Build stage: the release binary, with the default templates compiled in. Rust is pinned to a
# minor version (1.95.x: patch releases only), the runtime image to a digest; see docs/DEPLOY.md.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Parallel compile jobs; fewer need less memory (BUILD_JOBS=1 in .env on a 1 GB host; empty: one
# per CPU). See docs/DEPLOY.md for the memory and time a build takes.
ARG BUILD_JOBS

# Dependencies first, in their own layer: compiled against stand-in sources, so this layer is
# reused until Cargo.toml or Cargo.lock changes and a change to the relay's own code rebuilds only
# the relay. (cargo-chef does the same; this needs nothing beyond cargo.) Cargo.toml names the
# benchmarks, so their sources come along; they are not built here.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked ${BUILD_JOBS:+--jobs "$BUILD_JOBS"} \
 && rm -r src

COPY src ./src
COPY templates ./templates
# COPY keeps the files' own modification times, which may be older than the stand-ins' build:
# touching the crate roots makes cargo rebuild the relay instead of keeping the stand-in binary.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked ${BUILD_JOBS:+--jobs "$BUILD_JOBS"} \
 && cp target/release/marzban-discord-relay /marzban-discord-relay \
 && mkdir /out && mkdir -m 700 /out/data

# Runtime stage: glibc and nothing else (no shell), as distroless's non-root user 65532. TLS roots
# are built into the binary. Pinned by digest; docs/DEPLOY.md says how to move it forward.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
LABEL org.opencontainers.image.title="marzban-discord-relay" \
      org.opencontainers.image.description="Relays Marzban, PasarGuard and Marzneshin user events to Discord as templated embeds" \
      org.opencontainers.image.licenses="MIT"
COPY --from=build /marzban-discord-relay /usr/local/bin/marzban-discord-relay
# The built-in templates, to copy from when writing overrides (they are compiled in as well).
COPY --from=build /src/templates /usr/share/marzban-discord-relay/templates
ENV LISTEN_ADDR=0.0.0.0:9000 \
    DATA_DIR=/data \
    TEMPLATES_DIR=/templates
# The volume's mount point belongs to distroless's nonroot user (65532) and is 0700, so a new named
# volume is too. `COPY … /data /data` would copy the folder's contents only, leaving the image's
# /data 0755; copying /out/ to / brings /data itself, mode included (BuildKit and the classic
# builder alike). A bind mount keeps the host folder's owner and mode: see "Docker compose" in
# the README.
COPY --from=build --chown=65532:65532 /out/ /
VOLUME ["/data"]
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/marzban-discord-relay", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/marzban-discord-relay"]
CMD ["serve"]
