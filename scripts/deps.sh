#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the build and the tests need, if any
# is missing.  Uses sudo when not run as root.
set -euo pipefail

packages=(build-essential cmake ninja-build pkg-config libevent-dev
          libcmocka-dev iproute2 python3-dev python3-pytest
          python3-setuptools libcurl4-openssl-dev libjson-c-dev libssl-dev
          openssl etcd-server libucx-dev zlib1g-dev)
optional=()
# `deps.sh fuzz`: clang and libFuzzer too, for the fuzz step of test.sh.
# Debian 12 packages clang's runtimes apart (libclang-rt-dev), Ubuntu 22.04
# ships them with clang: that one is installed where it exists.
if [[ "${1:-}" == "fuzz" ]]; then
    packages+=(clang)
    optional+=(libclang-rt-dev)
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
known() {
    apt-cache show "$1" >/dev/null 2>&1
}

missing=()
for pkg in "${packages[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
for pkg in "${optional[@]}"; do
    if ! installed "$pkg" && known "$pkg"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update -qq
for pkg in "${optional[@]}"; do
    if ! installed "$pkg" && known "$pkg" &&
            [[ " ${missing[*]} " != *" $pkg "* ]]; then
        missing+=("$pkg")
    fi
done
echo "installing: ${missing[*]}"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
