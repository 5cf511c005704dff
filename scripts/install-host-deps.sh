#!/usr/bin/env bash
# Debian packages the test suite needs on the host (idempotent; quick when all are there).
#   systemd-container debootstrap : the real-systemd testbed (systemd-nspawn)
#   libsystemd-dev pkg-config gcc : building systemd-python for the journal reporter
#   dpkg-dev fakeroot lintian rpm rpmlint groff-base : building and checking the .deb and .rpm
#   iproute2 make python3-venv    : addresses/routes in bundles; the build itself
set -euo pipefail
PKGS=(systemd-container debootstrap libsystemd-dev pkg-config gcc python3-venv
      dpkg-dev fakeroot lintian rpm rpm2cpio cpio rpmlint groff-base iproute2 make)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-host-deps: missing Debian packages: ${missing[*]} (run as root to install;" \
       "the system tests skip without them)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-host-deps: installed ${missing[*]}" >&2
