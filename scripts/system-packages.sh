#!/usr/bin/env bash
# Install the Debian packages named on the command line that are missing.
# As root this runs apt-get; otherwise it says what to install and goes on
# (the parts that need them skip with a message).
set -eu
missing=()
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "NOTE: missing system packages: ${missing[*]}" >&2
    echo "      install them with: sudo apt-get install ${missing[*]}" >&2
    echo "      (tests that need them will be skipped with a message)" >&2
fi
