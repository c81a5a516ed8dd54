#!/usr/bin/env bash
# Build the Debian bookworm base image that boots systemd as PID 1 under podman.
# The debootstrap tarball is cached under $CACHE and keyed on this script's content, so a
# re-run imports from the cache (or does nothing when the image is already present).
set -euo pipefail

IMAGE=${CAPILLARY_BASE_IMAGE:-localhost/capillary-bookworm:latest}
CACHE=${CAPILLARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/capillary}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,ca-certificates,curl,iproute2,procps,bcftools,tabix,openssh-server,sudo,gnupg,xz-utils,zstd,pigz

here=$(cd "$(dirname "$0")" && pwd)
key=$( (cat "$0"; echo "$PACKAGES") | sha256sum | cut -c1-12)
tarball="$CACHE/bookworm-systemd-$key.tar"
label_key=org.capillary.base-key

mkdir -p "$CACHE"
if podman image exists "$IMAGE" &&
   [ "$(podman image inspect --format "{{ index .Labels \"$label_key\" }}" "$IMAGE" 2>/dev/null)" = "$key" ]; then
  echo "base image $IMAGE is current ($key)"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  echo "debootstrap bookworm into $tarball (takes about a minute and a half)"
  root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/debootstrap.log"; exit 1; }
  # No host identity in the base: machine-id is generated at first boot, SSH host keys are
  # created by whoever needs an sshd (the Packer SSH target), never shipped.
  : >"$root/etc/machine-id"
  rm -f "$root"/etc/ssh/ssh_host_* "$root/var/lib/dbus/machine-id"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  # Units that make no sense in a container and slow the boot.
  for unit in systemd-udevd.service systemd-udev-trigger.service getty@tty1.service \
              systemd-remount-fs.service ssh.service apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  echo "capillary" >"$root/etc/hostname"
  # mktemp made the root 0700; a root filesystem is 0755, or nothing but root can exec in it
  # wherever the storage keeps the mode (vfs, as in the pcgr role's nested test).
  chmod 0755 "$root"
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  # Tarballs of earlier versions of this script are never used again (250 MB each).
  find "$CACHE" -maxdepth 1 -name 'bookworm-systemd-*.tar' ! -name "$(basename "$tarball")" -delete
fi

podman import \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=podman' \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  --change "LABEL $label_key=$key" \
  "$tarball" "$IMAGE" >/dev/null 2>&1
echo "imported $IMAGE from $tarball"
