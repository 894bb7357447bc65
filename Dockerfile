# Build: docker build -t mbpanel-auth .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY src ./src
COPY migrations ./migrations
COPY bench ./bench
RUN cargo build --release --locked --bin mbpanel-auth

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app mbpanel && mkdir -p /app/data && chown mbpanel /app/data
WORKDIR /app
COPY --from=build /src/target/release/mbpanel-auth /usr/local/bin/mbpanel-auth
USER mbpanel
ENV BIND_ADDR=0.0.0.0:8000 DATA_DIR=/app/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000"]
ENTRYPOINT ["mbpanel-auth"]
CMD ["serve"]
