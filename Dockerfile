# The sandcrab action's image: the static sandcrab binary and git (the runner commits and pushes
# the branch) on a small base. GitHub builds this file on the runner for every job that uses the
# action (`runs.image: Dockerfile`).
#
# Real users: the defaults. The build stage compiles sandcrab from this repository with Rust on
# Alpine (musl, so the binary is static and also runs inside any sandbox image); the runtime
# stage is Alpine with git and CA certificates.
#
# A binary built elsewhere (release pipelines, the tests of this repository, machines that pull
# no image): put it at prebuilt/sandcrab in the build context and it is used as is; the build
# stage then only copies it, so BUILDER_IMAGE can be any image with sh. RUNTIME_IMAGE may be any
# image with sh and git (apk is used only when present). Works with the classic builder and with
# BuildKit alike (no stage is skipped on purpose, no RUN --mount).
ARG BUILDER_IMAGE=rust:1-alpine
ARG RUNTIME_IMAGE=alpine:3.20

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
# .cargo/config.toml names Debian's musl-gcc; Alpine's gcc is musl's.
ENV CC_x86_64_unknown_linux_musl=gcc CC_aarch64_unknown_linux_musl=gcc
RUN if [ -f prebuilt/sandcrab ]; then \
        cp prebuilt/sandcrab /sandcrab; \
    else \
        apk add --no-cache musl-dev gcc \
        && cargo build --release --locked --bin sandcrab \
        && cp target/release/sandcrab /sandcrab; \
    fi \
    && chmod 0755 /sandcrab

FROM ${RUNTIME_IMAGE}
# The checkout mounted in belongs to the runner's user, not root: without safe.directory git
# refuses it ("dubious ownership"). The image only ever works on that one checkout.
RUN if command -v apk >/dev/null; then apk add --no-cache git ca-certificates; fi \
    && git --version \
    && git config --system --add safe.directory "*"
COPY --from=build /sandcrab /usr/local/bin/sandcrab
LABEL org.opencontainers.image.title="sandcrab" \
      org.opencontainers.image.description="Runs a coding agent in CI and reports back" \
      org.opencontainers.image.licenses="MIT"
ENTRYPOINT ["/usr/local/bin/sandcrab", "run"]
