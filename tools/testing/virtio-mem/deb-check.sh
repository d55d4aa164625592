#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The Debian package's path, in a scratch root (make check-deb): a minimal
# Debian 12 from the archive (debootstrap), Debian's 6.1 kernel headers in
# it, then apt install of make deb's package: DKMS must build and install
# the module for that kernel. Then kernels installed afterwards, one of
# each series (6.12 from bookworm-security, image and headers; 6.1's cloud
# flavour): each must get the module built and installed by itself. The
# machine's own kernels, /lib/modules and DKMS tree are never touched.
#
#   deb-check.sh DEB [ROOT]     ROOT default: .build/deb-root (reused)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
deb=$(realpath "$1")
root=${2:-$here/.build/deb-root}
mirror=http://deb.debian.org/debian
pkg=virtio-mem
ver=$(dpkg-deb -f "$deb" Version)

say() { echo "deb-check: $*"; }
fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }

if [ ! -x "$root/usr/bin/apt-get" ]; then
	command -v debootstrap >/dev/null ||
		apt-get install -y -q --no-install-recommends debootstrap
	rm -rf "$root"
	say "debootstrap bookworm into $root"
	debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
	cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
fi

mounted=()
cleanup() {
	for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc sys dev; do
	mount --bind "/$m" "$root/$m"
	mounted+=("$root/$m")
done

in_root() {
	chroot "$root" env DEBIAN_FRONTEND=noninteractive \
		PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
apt_in_root() {
	in_root apt-get install -y -q --no-install-recommends "$@" \
		>"$root/tmp/apt.log" 2>&1 || { tail -30 "$root/tmp/apt.log"; \
		fail "apt-get install $*"; }
}

# Built and installed for kernel $1: dkms says so, and the module is
# ours (our version) where modprobe looks first.
check_built() {
	local k=$1 st path
	st=$(in_root dkms status "$pkg/$ver" -k "$k")
	echo "$st" | grep -q "^$pkg/$ver, $k, x86_64: installed" ||
		fail "not installed for $k: ${st:-nothing}"
	path=$(in_root modinfo -k "$k" -n virtio_mem)
	case "$path" in
	*/updates/*) ;;
	*) fail "modprobe would load $path for $k, not ours" ;;
	esac
	[ "$(in_root modinfo -k "$k" -F version virtio_mem)" = "$ver" ] ||
		fail "the module for $k is not version $ver"
	say "$k: $st; modprobe loads $path"
}

in_root apt-get update -q >/dev/null
say "Debian's 6.1 headers, then the package"
apt_in_root linux-headers-amd64
k61=$(in_root dpkg-query -W -f='${Depends}' linux-headers-amd64 |
	sed -n 's/^linux-headers-\([^ ,]*\).*/\1/p')
# As a user would: apt install ./FILE pulls in dkms.
cp "$deb" "$root/tmp/"
apt_in_root "/tmp/$(basename "$deb")"
check_built "$k61"

say "a 6.12 kernel installed afterwards"
apt_in_root linux-image-6.12-amd64 linux-headers-6.12-amd64
k612=$(in_root dpkg-query -W -f='${Depends}' linux-headers-6.12-amd64 |
	sed -n 's/^linux-headers-\([^ ,]*\).*/\1/p')
check_built "$k612"

say "a 6.1 kernel of another flavour installed afterwards"
apt_in_root linux-image-cloud-amd64 linux-headers-cloud-amd64
kcloud=$(in_root dpkg-query -W -f='${Depends}' linux-headers-cloud-amd64 |
	sed -n 's/^linux-headers-\([^ ,]*\).*/\1/p')
check_built "$kcloud"

say "PASS: built for $k61 at install, for $k612 and $kcloud when they came"
