#!/usr/bin/env bash
# Builds the pinned actionlint (scripts/actionlint/go.mod, checked against its go.sum) into the cache, once, and
# prints its path. The workflow tests run it; it uses shellcheck for `run:` scripts when that is on the PATH.
#   actionlint=$(scripts/bootstrap-actionlint.sh)
set -euo pipefail
module=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/actionlint" && pwd)
version=$(sed -n 's|^\s*github.com/rhysd/actionlint \(v[^ ]*\).*|\1|p' "$module/go.mod")
binary=${RELEASE_INFRA_CACHE:-${HOME:?}/.cache/release-infra}/actionlint-$version/bin/actionlint
if [[ ! -x $binary ]]; then
    command -v go >/dev/null || { echo "bootstrap-actionlint: Go is needed to build actionlint $version" >&2; exit 1; }
    echo "bootstrap-actionlint: building actionlint $version" >&2
    # -mod=readonly: go.sum must already hold every checksum; GOTOOLCHAIN=local: no toolchain download.
    mkdir -p "$(dirname "$binary")"
    partial=$(mktemp "$binary.XXXXXX")  # two cold runs at once each build their own, then one wins the move
    (cd "$module" && GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 \
        go build -trimpath -o "$partial" github.com/rhysd/actionlint/cmd/actionlint) || { rm -f "$partial"; exit 1; }
    mv "$partial" "$binary"
fi
echo "$binary"
