# Build: dependencies first (cached while Cargo.toml/Cargo.lock are unchanged), then the service.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /app
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src tests/api benches \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/api/main.rs \
    && for b in daily_fold dashboard tick retention; do echo 'fn main() {}' > benches/$b.rs; done \
    && cargo build --release --locked --bin ads-stats \
    && rm -rf src tests benches
COPY src src
COPY migrations migrations
COPY config config
# The image has no .git: pass the commit for --version and /health, e.g.
# docker build --build-arg BUILD_GIT_COMMIT="$(git rev-parse HEAD)" . (else it says "unknown").
ARG BUILD_GIT_COMMIT=""
# Cargo reads every target of the manifest: stub the test and bench files the image leaves out.
RUN mkdir -p tests/api benches && touch tests/api/main.rs \
    && for b in daily_fold dashboard tick retention; do echo 'fn main() {}' > benches/$b.rs; done \
    && touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin ads-stats

# Run: a slim image, a non-root user, data under /var/lib/ads-stats.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/ads-stats ads-stats
COPY --from=build /app/target/release/ads-stats /usr/local/bin/ads-stats
COPY config /etc/ads-stats
# Production mode: JSON logs, and no start without your own JWT_SECRET (32 bytes or more).
ENV ADS_STATS_CONFIG_DIR=/etc/ads-stats \
    ADS_STATS_ENV=production \
    ADS_STATS_SERVER__HOST=0.0.0.0
WORKDIR /var/lib/ads-stats
USER ads-stats
EXPOSE 3000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=6s --start-period=30s --retries=3 CMD ["ads-stats", "check-health"]
ENTRYPOINT ["ads-stats"]
CMD ["serve"]
