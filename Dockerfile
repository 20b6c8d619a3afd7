# syntax=docker/dockerfile:1

# Build stage: the release binary, with the default templates compiled in.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
# Cargo.toml names the benchmarks, so their sources must be present (they are not built here).
COPY benches ./benches
RUN cargo build --release --locked \
 && cp target/release/marzban-discord-relay /marzban-discord-relay \
 && mkdir /data

# Runtime stage: glibc and nothing else, as a non-root user. TLS roots are built into the binary.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /marzban-discord-relay /usr/local/bin/marzban-discord-relay
# The built-in templates, to copy from when writing overrides (they are compiled in as well).
COPY --from=build /src/templates /usr/share/marzban-discord-relay/templates
ENV LISTEN_ADDR=0.0.0.0:9000 \
    DATA_DIR=/data \
    TEMPLATES_DIR=/templates
# The volume's mount point belongs to distroless's nonroot user (65532), so a new volume does too.
COPY --from=build --chown=65532:65532 /data /data
VOLUME ["/data"]
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/marzban-discord-relay", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/marzban-discord-relay"]
CMD ["serve"]
