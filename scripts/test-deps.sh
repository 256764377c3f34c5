#!/usr/bin/env bash
# Installs what the test suite needs that npm does not bring, from Debian/Ubuntu packages:
# redis-server (the Redis-backed mirror budgets are tested against a real one, also over TLS),
# docker-compose (validates docker-compose.yml; no Docker engine is needed), openssl
# (certificates made at test time), python3-grpcio (a gRPC C-core peer, which unlike grpc-js
# refuses requests without `te: trailers`), nghttp2-client (h2load, for bench) and chromium (the
# report page's test). Does nothing
# when they are already there.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v openssl >/dev/null || need+=(openssl)
# curl (with HTTP/2) is the client of the h2c and TLS listener tests.
command -v curl >/dev/null || need+=(curl ca-certificates)
# Debian's own interpreter: a python3 earlier on PATH (pyenv) may lack the Debian module.
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || need+=(python3-grpcio)
command -v h2load >/dev/null || need+=(nghttp2-client)
# A real headless browser checks the comparison report page (driven over the DevTools protocol).
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
