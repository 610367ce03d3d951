# Sourced by scripts that run the real engine: the pinned CLI and plugin, a local file backend and the
# passphrase secrets provider of local stacks. Nothing here is printed, so callers' output stays theirs.
# shellcheck shell=bash
_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
# A failed bootstrap stops here: `eval` of nothing would succeed, and a caller would go on with another pulumi.
"$_root/scripts/python-env.sh" || return 1
_exports=$("$_root/scripts/bootstrap-engine.sh") || return 1
eval "$_exports"
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$_root/build/state}
# Local stacks encrypt their secrets with this passphrase; the committed stack files hold only placeholder
# secrets for it. Real environments set PULUMI_CONFIG_PASSPHRASE (or _FILE, or another secrets provider) from CI.
if [[ -z ${PULUMI_CONFIG_PASSPHRASE_FILE:-} ]]; then
    export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE-release-infra-local}
fi
if [[ $PULUMI_BACKEND_URL == file://* ]]; then
    mkdir -p "${PULUMI_BACKEND_URL#file://}"
fi
unset _root _exports
