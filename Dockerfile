# syntax=docker/dockerfile:1
# One image for every role: MODE (or the command) picks api, migration, standalone, ...

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/kiln /out/usr/local/bin/kiln \
 && install -d -o 1001 -g 1001 /out/app/storage
COPY config /out/app/config

# distroless/cc: glibc and libgcc only; no shell, no package manager. TLS roots are
# compiled into kiln (webpki-roots), so no CA bundle is needed either.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /out/ /
WORKDIR /app
USER 1001:1001
ENV DIFY_BIND_ADDRESS=0.0.0.0 \
    DIFY_PORT=5001 \
    KILN_DATA_DIR=/app/storage \
    OPENDAL_FS_ROOT=/app/storage
EXPOSE 5001
VOLUME ["/app/storage"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["kiln", "healthcheck"]
ENTRYPOINT ["kiln"]
