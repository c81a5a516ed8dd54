#!/usr/bin/env bash
# Install the Debian packages that `make test` and `make demo` need, and only those missing.
# Safe to run again: with everything present it does nothing and touches no network.
set -euo pipefail

PACKAGES=(
  podman runc uidmap slirp4netns containernetworking-plugins  # containers: systemd targets and local workers
  debootstrap                                                  # the bookworm base image
  packer                                                       # Debian's packer 1.6.6: validate, fmt, local bakes
  bcftools tabix                                               # the summary engine and test data (bgzip)
  docker-registry                                              # a local OCI registry standing in for ghcr.io
  openssh-client openssh-server                                # the Packer amazon-ebs SSH build target
  openjdk-17-jre-headless                                      # ansible-rulebook (Event-Driven Ansible) runs on Java 17
  ruby                                                         # syntax check of the Vagrantfile
  pigz                                                         # parallel gunzip: the refdata benchmark unpacks as workers do
  python3-venv git make curl ca-certificates
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or install them with sudo apt-get install)" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The docker-registry package starts a registry on :5000 at install; the tests start their own.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
