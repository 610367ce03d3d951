# Sourced by scripts that run the real engine: the pinned CLI and plugin, a local file backend and the
# passphrase secrets provider of local stacks. Nothing here is printed, so callers' output stays theirs.
# shellcheck shell=bash
_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
"$_root/scripts/python-env.sh"
eval "$("$_root/scripts/bootstrap-engine.sh")"
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$_root/build/state}
# Local stacks encrypt their secrets with this passphrase; the committed stack files hold only placeholder
# secrets for it. Real environments set PULUMI_CONFIG_PASSPHRASE (or another secrets provider) from CI.
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE-release-infra-local}
export PULUMI_SKIP_CONFIRMATIONS=true
mkdir -p "${PULUMI_BACKEND_URL#file://}"
unset _root
