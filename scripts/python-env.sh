#!/usr/bin/env bash
# Creates or refreshes .venv from requirements.lock: every package, direct or not, at a pinned version and checked
# against its hashes, so a cold machine months from now installs what CI tested. A no-op while pyproject.toml and the
# lock are unchanged. After changing a dependency in pyproject.toml, regenerate the lock (uv, from PyPI):
#   uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 --universal -o requirements.lock
set -euo pipefail
cd "$(dirname "$0")/.."
# Python dynamic providers look for the virtualenv relative to `main: infra/` (pulumi/pulumi#7061).
ln -sfn ../.venv infra/.venv
stamp=.venv/.dependencies.sha256
want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [[ -x .venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    exit 0
fi
echo "python-env: installing the locked dependencies into .venv" >&2
python3 -m venv .venv
pip=(.venv/bin/pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip==26.3
"${pip[@]}" --require-hashes --no-deps -r requirements.lock
"${pip[@]}" --no-deps -e .  # the project itself; its dependencies are the lock's
if ! .venv/bin/pip check >&2; then
    echo "python-env: requirements.lock does not satisfy pyproject.toml; regenerate it (see the top of $0)" >&2
    exit 1
fi
echo "$want" > "$stamp"
