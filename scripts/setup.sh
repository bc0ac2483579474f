#!/usr/bin/env bash
# Installs what patchring and its lab need on a fresh Debian 12 machine (as root), then the
# project itself into .venv. Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  systemd-container   # systemd-nspawn: each lab host boots real systemd
  mmdebstrap          # builds the lab's Debian base image
  apt-utils           # apt-ftparchive: the lab's apt repository
  dpkg-dev gnupg      # test packages and the repository's signing key
  iproute2 nftables   # lab network namespaces, bridge, faults
  openssh-client openssh-server
  git ca-certificates python3-venv
  chromium            # headless browser: the HTML report's screenshot test
  postgresql          # the ledger's PostgreSQL backend: tests start a private server
)
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (the lab needs namespaces, cgroups and mounts)" >&2
  exit 1
fi
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  # --no-install-recommends: systemd-container recommends libnss-mymachines, which would edit
  # this machine's nsswitch.conf.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# An editable install leaves the package uncompiled, and where PYTHONDONTWRITEBYTECODE is set
# every command would compile it again (half a second); pip compiles a regular install itself.
.venv/bin/python -m compileall -q orchestrator deploys >/dev/null
echo "setup: done; patchring is .venv/bin/patchring"
