#!/usr/bin/env bash
# Build (once) the KrakenD-compatible gateway binary of gateway/ and print its path.
#
# KrakenD CE itself cannot be fetched here (its module versions are not served by
# the Go module proxy), so gateway/ wires the public KrakenD/Lura library modules
# that are served (lura, krakend-circuitbreaker, krakend-ratelimit, krakend-otel)
# into a `krakend` binary offering `krakend check -c FILE` and `krakend run -c FILE`.
# Every module version is pinned in gateway/go.mod and checked against the
# committed gateway/go.sum (GOFLAGS=-mod=readonly).
#
# The binary is cached outside the repository:
#
#   ${RELEASE_INFRA_CACHE:-$HOME/.cache/release-infra}/krakend-v<LURA>-<HASH>/bin/krakend
#
# where <LURA> is the pinned github.com/luraproject/lura/v2 version and <HASH> a
# short sha256 of gateway/go.mod, gateway/go.sum and gateway/*.go, so any code or
# pin change builds a new binary; an existing one is reused without running Go.
#
# Usage:   KRAKEND=$(scripts/bootstrap-gateway.sh | tail -n1)
# Stdout:  the absolute path of the binary, as the last line. Logs go to stderr.
# Needs:   Go >= 1.23 on PATH, only when the binary is not cached yet.
set -euo pipefail

log() { printf '[bootstrap-gateway] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
GATEWAY_DIR=$(cd -- "$SCRIPT_DIR/../gateway" && pwd)
CACHE_ROOT=${RELEASE_INFRA_CACHE:-${HOME:?}/.cache/release-infra}

[[ -f $GATEWAY_DIR/go.mod && -f $GATEWAY_DIR/go.sum ]] || die "missing $GATEWAY_DIR/go.mod or go.sum"

LURA_VERSION=$(awk '$1 == "github.com/luraproject/lura/v2" { print $2; exit }' "$GATEWAY_DIR/go.mod")
[[ -n $LURA_VERSION ]] || die "github.com/luraproject/lura/v2 is not pinned in $GATEWAY_DIR/go.mod"

# Key inputs: go.mod, go.sum and the Go sources, named and hashed in C-locale order.
HASH=$(
  cd "$GATEWAY_DIR"
  export LC_ALL=C
  shopt -s nullglob
  sources=(*.go)
  (( ${#sources[@]} > 0 )) || die "no Go sources in $GATEWAY_DIR"
  for f in go.mod go.sum "${sources[@]}"; do
    printf '%s %s\n' "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"
  done | sha256sum | cut -c1-12
)
[[ -n $HASH ]] || exit 1

# shellcheck source=scripts/cached-go-build.sh
. "$SCRIPT_DIR/cached-go-build.sh"
cached_go_build krakend "$GATEWAY_DIR" "$CACHE_ROOT/krakend-$LURA_VERSION-$HASH" .
