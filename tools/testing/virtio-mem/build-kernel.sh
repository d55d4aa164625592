#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build a minimal x86_64 guest kernel with our virtio-mem driver and its
# KUnit tests built in (make kernel).
#
#   build-kernel.sh           overlay, configure if needed, build bzImage
#   build-kernel.sh --check   first build our objects (the KUnit tests too)
#                             with W=1 and sparse, fail on any finding
#
# Debian's linux-source-6.1, unpacked once by the top-level Makefile, gets
# our files overlaid: the driver sources and Makefile lines, our Kconfig
# entries in place of the kernel's VIRTIO_MEM entry, our uapi header; the
# kernel's own virtio_mem.c is removed. Only files whose content changed
# are copied, so kbuild rebuilds only what our change touches. The kernel
# is configured from tinyconfig plus kernel.config and built out of tree.
#
# A successful build records what it was built from in
# $KERNEL_OUT/.virtio-mem-sources (sha256sum lines, paths relative to the
# repository): the built-in tests refuse a bzImage whose sources changed
# since, or whose build failed (the record is removed when a build starts).
#
# Environment: LINUX_SRC (unpacked source), KERNEL_OUT (build directory),
# JOBS (default: 2), VMEM_SRC (where drivers/virtio and include/uapi come
# from, default the repository). ccache is used when installed, with the
# repository as its base directory.
set -euo pipefail
# Called from make: its flags (W=1, -j, variables) are not for this build.
unset MAKEFLAGS MFLAGS MAKELEVEL

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
src=${LINUX_SRC:-$here/.build/linux-source-6.1}
out=${KERNEL_OUT:-$here/.build/kernel-build}
frag=$here/kernel.config
jobs=${JOBS:-2}
check=
case "${1:-}" in
--check) check=1 ;;
"") ;;
*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

die() {
	echo "build-kernel.sh: $*" >&2
	exit 1
}

[ -f "$src/.unpacked" ] ||
	die "$src is not unpacked: run make $src/.unpacked"
mkdir -p "$out"

# One kernel build at a time: a second caller waits for the first.
exec 9>"$out/.build-kernel.lock"
if ! flock -n 9; then
	echo "build-kernel.sh: waiting for another kernel build" >&2
	flock 9
fi

t0=$(date +%s)
sources=$out/.virtio-mem-sources
# From here on the bzImage is not known to match the sources.
rm -f "$sources"
kmake=(make -C "$src" O="$out" ARCH=x86_64 -j"$jobs")
if command -v ccache >/dev/null; then
	kmake+=(CC="ccache gcc")
	# Paths inside the repository hashed as relative ones: a fresh clone
	# elsewhere hits what an earlier build of the same sources cached.
	export CCACHE_BASEDIR=$repo
fi

# --- overlay ---

# What the kernel is built from, hashed before it is copied: a file changed
# meanwhile makes the record disagree with the repository, not the bzImage
# look newer than it is.
# The driver's sources come from VMEM_SRC if set (a copy with a deliberate
# bug: make mutants), else from the repository.
drv_src=${VMEM_SRC:-$repo}
manifest=$({
	cd "$drv_src" && {
		for f in drivers/virtio/virtio_mem_*.[ch]; do
			case "$f" in *.mod.c) ;; *) echo "$f" ;; esac
		done
		echo drivers/virtio/Makefile
		echo include/uapi/linux/virtio_mem.h
	} | xargs sha256sum
	cd "$repo" && sha256sum Kconfig tools/testing/virtio-mem/kernel.config
} | LC_ALL=C sort -k2)

state=$src/.virtio-mem-overlay
vdir=$src/drivers/virtio

# Copy if the content differs, so that unchanged files keep their mtime.
install_file() {
	if ! cmp -s "$1" "$2"; then
		cp "$1" "$2"
		echo "  OVERLAY $2"
	fi
}

# The kernel's originals, saved once: generated files start from them.
if [ ! -d "$state/orig" ]; then
	mkdir -p "$state/orig.tmp"
	cp "$vdir/Makefile" "$vdir/Kconfig" "$vdir/virtio_mem.c" \
		"$src/include/uapi/linux/virtio_mem.h" "$state/orig.tmp/"
	mv "$state/orig.tmp" "$state/orig"
fi

# Our driver sources; files we copied before and that are gone are removed.
ours=()
for f in "$drv_src"/drivers/virtio/virtio_mem_*.[ch]; do
	case "$f" in *.mod.c) continue ;; esac
	ours+=("$(basename "$f")")
	install_file "$f" "$vdir/$(basename "$f")"
done
if [ -f "$state/manifest" ]; then
	while read -r f; do
		case " ${ours[*]} " in *" $f "*) ;; *) rm -f "$vdir/$f" ;; esac
	done <"$state/manifest"
fi
printf '%s\n' "${ours[@]}" >"$state/manifest"
rm -f "$vdir/virtio_mem.c"

install_file "$drv_src/include/uapi/linux/virtio_mem.h" \
	"$src/include/uapi/linux/virtio_mem.h"

# drivers/virtio/Makefile: the kernel's, with its virtio_mem line replaced
# by our Makefile.
tmp=$state/Makefile.new
obj_line='^obj-[$](CONFIG_VIRTIO_MEM)[[:space:]]'
n=$(grep -c "$obj_line" "$state/orig/Makefile") || true
[ "$n" = 1 ] || die "expected one CONFIG_VIRTIO_MEM line in the kernel's" \
	"drivers/virtio/Makefile, found $n"
{
	grep -v "$obj_line" "$state/orig/Makefile"
	echo
	echo "# --- virtio-mem: from $drv_src/drivers/virtio/Makefile ---"
	cat "$drv_src/drivers/virtio/Makefile"
} >"$tmp"
install_file "$tmp" "$vdir/Makefile"

# drivers/virtio/Kconfig: the kernel's VIRTIO_MEM entry, up to the next
# entry, replaced by our Kconfig.
tmp=$state/Kconfig.new
awk -v ours="$repo/Kconfig" '
	/^config VIRTIO_MEM$/ {
		while ((getline line < ours) > 0)
			print line
		print ""
		skip = 1; done++
		next
	}
	skip && /^(config|menu|endmenu|if|endif|source|comment|choice)/ {
		skip = 0
	}
	!skip { print }
	END { if (done != 1) exit 1 }
' "$state/orig/Kconfig" >"$tmp" ||
	die "no single 'config VIRTIO_MEM' entry in the kernel's" \
		"drivers/virtio/Kconfig"
install_file "$tmp" "$vdir/Kconfig"

# --- configuration ---

# Reconfigure from scratch when the fragment, our Kconfig or this script
# changed; otherwise kbuild's own syncconfig keeps .config current.
stamp=$(cat "$frag" "$repo/Kconfig" "$0" | sha256sum | cut -d' ' -f1)
if [ ! -f "$out/.config" ] ||
	[ "$(cat "$out/.config-stamp" 2>/dev/null)" != "$stamp" ]; then
	echo "build-kernel.sh: configuring $out (tinyconfig + $frag)"
	rm -f "$out/.config-stamp"
	"${kmake[@]}" -s tinyconfig >/dev/null
	(cd "$src" && ARCH=x86_64 scripts/kconfig/merge_config.sh -m \
		-O "$out" "$out/.config" "$frag" >/dev/null)
	"${kmake[@]}" -s olddefconfig
	echo "$stamp" >"$out/.config-stamp"
fi

# Every line of the fragment must be in .config as written: a missing
# dependency makes Kconfig drop a symbol silently.
missing=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=* | "# CONFIG_"*" is not set")
		grep -qxF "$line" "$out/.config" || missing+=("$line") ;;
	esac
done <"$frag"
if [ ${#missing[@]} -ne 0 ]; then
	rm -f "$out/.config-stamp"
	die "$out/.config lacks (check their dependencies):" \
		"$(printf '\n    %s' "${missing[@]}")"
fi

# --- build ---

if [ -n "$check" ]; then
	# W=1 and sparse over our objects only, the KUnit tests included: the
	# rest of the kernel is not ours to fix. First, so that a finding stops
	# the build before the long part; the bzImage build below recompiles
	# these objects without W=1.
	objs=()
	for f in "${ours[@]}"; do
		case "$f" in *.c) objs+=("drivers/virtio/${f%.c}.o") ;; esac
	done
	log=$out/check.log
	"${kmake[@]}" W=1 C=2 CHECK=sparse "${objs[@]}" 2>&1 | tee "$log" ||
		die "building our objects with W=1 and sparse failed (see $log)"
	if grep -E 'warning:|error:' "$log" >/dev/null; then
		die "W=1 or sparse warnings in our objects (see $log)"
	fi
	echo "build-kernel.sh: W=1 and sparse clean"
fi

"${kmake[@]}" bzImage
bzimage=$out/arch/x86/boot/bzImage
[ -f "$bzimage" ] || die "no $bzimage"
echo "$manifest" >"$sources.tmp"
mv "$sources.tmp" "$sources"

echo "build-kernel.sh: $bzimage ($(($(date +%s) - t0)) s)"
