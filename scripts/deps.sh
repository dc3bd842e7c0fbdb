#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the build and the tests need, if any
# is missing.  Uses sudo when not run as root.
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config libevent-dev
          libcmocka-dev iproute2 python3-dev python3-pytest
          python3-setuptools)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
            grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
