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
    # Said in one line, before anything runs: a bare `sudo: not found` (127) reads like a broken script.
    if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
        echo "debian-packages: missing ${missing[*]}: install them (apt-get install ${missing[*]}), or run this as" \
            "root or as a user with passwordless sudo" >&2
        exit 1
    fi
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
# post-install scripts from starting services (in a container there is no init system to start them anyway).
# It goes on exit, however the script ends (a failed install, Ctrl-C, a cancelled CI job): one left behind keeps every
# service installed later on the machine from starting.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
fi
"${sudo[@]}" apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600 \
    "${missing[@]}" >/dev/null
