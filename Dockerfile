# The sandcrab action's image: the static sandcrab binary and git (the runner commits and pushes
# the branch) on a small base. Released as ghcr.io/sandcrab/sandcrab:X.Y.Z (what action.yml
# pulls), built from the release's binaries; GitHub builds it from source only for the
# development action (.github/actions/dev).
#
# Real users: the defaults. The build stage compiles sandcrab from this repository with Rust on
# Alpine (musl, so the binary is static and also runs inside any sandbox image); the runtime
# stage is Alpine with git and CA certificates.
#
# Binaries built elsewhere (the release workflow, the tests of this repository, machines that
# pull no image): put them at prebuilt/<TARGETARCH>/sandcrab (amd64, arm64: one multi-platform
# build takes each platform's own) or prebuilt/sandcrab in the build context and they are used
# as is; the build stage then only copies, so BUILDER_IMAGE can be any image with sh (the release
# passes alpine, so no Rust image is pulled and nothing runs under emulation but `apk add`).
# RUNTIME_IMAGE may be any image with sh and git (apk is used only when present). Works with the
# classic builder (no TARGETARCH: prebuilt/sandcrab) and with BuildKit alike.
ARG BUILDER_IMAGE=rust:1-alpine
ARG RUNTIME_IMAGE=alpine:3.20

FROM ${BUILDER_IMAGE} AS build
ARG TARGETARCH
WORKDIR /src
COPY . .
# .cargo/config.toml names Debian's musl-gcc; Alpine's gcc is musl's.
ENV CC_x86_64_unknown_linux_musl=gcc CC_aarch64_unknown_linux_musl=gcc
RUN if [ -n "${TARGETARCH}" ] && [ -f "prebuilt/${TARGETARCH}/sandcrab" ]; then \
        cp "prebuilt/${TARGETARCH}/sandcrab" /sandcrab; \
    elif [ -f prebuilt/sandcrab ]; then \
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
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/sandcrab/sandcrab"
ENTRYPOINT ["/usr/local/bin/sandcrab", "run"]
