#!/usr/bin/env bash
# Installs the system programs the serving tests drive: PostgreSQL (a real server that the tests
# start on loopback in a temporary folder and stop) and Chromium (headless, driven by
# Playwright for Python through its executable_path; Playwright's own browser download cannot
# run offline). Idempotent: installs only what is missing. Needs root (as CI runs) or sudo.
set -euo pipefail

missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql); fi
if ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
if ((${#missing[@]} == 0)); then
    exit 0
fi
echo "installing ${missing[*]} (Debian packages) for the serving tests"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
