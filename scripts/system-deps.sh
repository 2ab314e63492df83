#!/usr/bin/env bash
# Installs the Debian packages a purpose needs: `run` (build and run the gateway), `test`
# (plus the real peers and PostgreSQL the tests talk to) or `bench` (plus perf, which profiles
# the gateway under load; the load tool's own test profiles too, so `test` has it as well). As root it runs apt-get; otherwise it
# prints the exact command and fails, so nothing is half-installed silently.
set -euo pipefail

purpose="${1:-run}"
run_packages=(pkg-config ca-certificates clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev libswresample-dev libopus-dev)
# iproute2: tests/containers.rs runs the gateway in a network namespace of its own (`ip netns`).
# tcpdump: tests/first_run.rs captures what the example configuration sends.
# python3-venv: schemathesis (tests/api_attacked.rs) runs from a venv of its own, from PyPI.
test_packages=(sip-tester baresip kamailio postgresql postgresql-client openssl chromium nodejs npm linux-perf coturn firefox-esr iproute2 tcpdump python3 python3-venv)

packages=("${run_packages[@]}")
if [[ "$purpose" == "test" || "$purpose" == "bench" ]]; then
    packages+=("${test_packages[@]}")
fi

missing=()
for package in "${packages[@]}"; do
    # A Node.js installed outside Debian (nvm, nodesource) serves the browser tests just as well.
    if [[ "$package" == nodejs || "$package" == npm ]] && command -v "${package/nodejs/node}" >/dev/null; then
        continue
    fi
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} > 0)); then
    if [[ "$(id -u)" == "0" ]]; then
        echo "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "missing system packages: ${missing[*]}" >&2
        echo "run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

# Tools that are not Debian packages, pinned, into the user's cache (not system-wide).
if [[ "$purpose" == "test" ]]; then
    "$(dirname "${BASH_SOURCE[0]}")/schemathesis.sh" >/dev/null
fi
