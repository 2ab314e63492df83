#!/usr/bin/env bash
# Installs schemathesis (the OpenAPI fuzzer of tests/api_attacked.rs) from PyPI into a venv of its
# own under the user's cache, pinned with every dependency (tests/api/schemathesis-requirements.txt),
# once; prints the path of its `st` command. Safe to call again: an existing install is reused.
set -euo pipefail

version=4.32.5
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$here/tests/api/schemathesis-requirements.txt"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/sipbridge-tools/schemathesis-$version-$(sha256sum "$requirements" | cut -c1-12)"

# A venv cannot be moved (its scripts name their interpreter by path): it is built in place, and
# only a finished install gets the stamp, so an interrupted one is rebuilt, never reused.
if [[ ! -f "$venv/installed" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2
    "$venv/bin/st" --version >&2
    touch "$venv/installed"
fi
echo "$venv/bin/st"
