#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what the virtio-mem VM tests need on Debian 12 (run as root);
# with --deb, what make deb needs.
# Idempotent and fast when everything is present: dpkg-query is asked
# first and apt is only touched for packages that are missing.
set -euo pipefail

PKGS=(
	qemu-system-x86
	linux-image-amd64
	linux-headers-amd64
	linux-source-6.1
	# Debian 12's second series: the module is built for it and a subset
	# of the tests boots its image (make check); its vmlinuz is zstd;
	# checkpatch runs from its source too
	linux-image-6.12-amd64
	linux-headers-6.12-amd64
	linux-source-6.12
	zstd
	busybox-static
	kexec-tools
	# dkms.conf and its test (tests/test_dkms.py); works without its
	# recommends (fakeroot, sudo, linux-headers-*)
	dkms
	sparse
	cpio
	kmod
	make
	gcc
	# gcc -static for the guest programs (guest/memfill.c)
	libc6-dev
	python3
	python3-pytest
	# two guests at a time (run-tests.sh)
	python3-pytest-xdist
	# make kernel (build-kernel.sh): kconfig, objtool, timeconst; ccache
	# makes a rebuild after a configuration change mostly cache hits
	ccache
	flex
	bison
	bc
	libelf-dev
)

# make deb: what building the Debian package takes, only that.
if [ "${1:-}" = --deb ]; then
	PKGS=(debhelper dh-dkms dpkg-dev)
fi

missing=()
for p in "${PKGS[@]}"; do
	# Status is "install ok installed" only for fully installed packages.
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps.sh: installing: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: need root to install packages" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
