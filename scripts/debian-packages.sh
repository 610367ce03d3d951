#!/usr/bin/env bash
# Installs the named Debian packages that are missing, non-interactively; a no-op when all are installed.
# The test tiers that drive real parts (promtool, amtool, alertmanager, a registry) call it, in CI too, so a
# fresh machine gets what they need from the project's own files.
#   scripts/debian-packages.sh prometheus prometheus-alertmanager
set -euo pipefail
if [[ $# -eq 0 ]]; then
    echo "usage: $0 PACKAGE..." >&2
    exit 2
fi
missing=()
for package in "$@"; do
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null) != installed ]]; then
        missing+=("$package")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo -n)
fi
echo "debian-packages: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# One install at a time (two test runs on a fresh machine, or the registry tier beside another): apt's own lock
# fails at once, and one run's policy-rc.d must not go while the other installs. The packages are then asked
# for again, since the run that held the lock may have installed them.
if [[ -z ${RELEASE_INFRA_APT_LOCKED:-} ]] && command -v flock >/dev/null; then
    RELEASE_INFRA_APT_LOCKED=1 exec "${sudo[@]}" env RELEASE_INFRA_APT_LOCKED=1 \
        flock /var/lock/release-infra-apt "$0" "$@"
fi
"${sudo[@]}" apt-get update -qq -o DPkg::Lock::Timeout=600
# No recommends: the packages' own daemons are not wanted, only their binaries. policy-rc.d keeps the
# post-install scripts from starting services (there is no init system in a container or CI runner anyway).
policy=/usr/sbin/policy-rc.d
installed_policy=false
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    installed_policy=true
fi
status=0
"${sudo[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600 \
    "${missing[@]}" >/dev/null || status=$?
if $installed_policy; then
    "${sudo[@]}" rm -f "$policy"
fi
exit $status
