# SPDX-License-Identifier: GPL-2.0
#
# virtio-mem guest driver: build, install and test entry points.
#
#   make                  build drivers/virtio/virtio_mem.ko
#   make module-fi        the same with fault injection, for the tests
#                         (CONFIG_VIRTIO_MEM_FAULT_INJECTION), in .build/
#   make demo             boot a QEMU guest, grow it, show its memory follow
#   make bench            compare with Debian's own driver (BENCH_ARGS=--reps N)
#   make check            run every test (installs what it needs): build
#                         the module and make kernel-check (either failing
#                         stops it), then the module tests and the built-in
#                         ones in one pytest run
#   make check-module     module tests on Debian's kernel
#   make check-builtin    kernel-check, then boot the kernel: KUnit and
#                         boot tests
#   make check-6.12       the tests series-6.12.tests lists, on Debian's
#                         6.12 image (make check runs them too)
#   make module-6.12      the module for Debian's 6.12 (KDIR=... for others)
#   make kernel           guest kernel with the driver and KUnit built in
#   make kernel-check     make kernel, then W=1 and sparse over our objects
#                         in it (the KUnit tests included)
#   make checkpatch       checkpatch.pl --strict over the driver
#   make mutants          break the driver on purpose, one bug at a time,
#                         and check that the tests notice (not in check)
#   make sparse           sparse (C=2) over the driver
#   make modules_install  install where modprobe prefers it over the distro's
#   make dist             virtio-mem-VERSION.tar.gz, the sources DKMS builds
#                         (dkms.conf, README.md); DISTDIR= puts it elsewhere
#   make deb              virtio-mem-dkms_VERSION_all.deb (debhelper, dh-dkms)
#   make check-deb        install it in a scratch Debian root: DKMS builds it
#                         for the kernels there and for ones installed later
#
# KDIR selects the kernel to build against; by default the one that Debian's
# linux-headers-amd64 points to, not the running kernel.

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
DRV := $(TOP)/drivers/virtio
TESTDIR := $(TOP)/tools/testing/virtio-mem
BUILD := $(TESTDIR)/.build
PYTHON := /usr/bin/python3

# Recursive (=), not :=: on a fresh machine deps.sh installs the headers
# after this file is read, and the recipes that use these run after it.
DEB_KVER = $(shell dpkg-query -W -f='$${Depends}' linux-headers-amd64 2>/dev/null | \
	sed -n 's/^linux-headers-\([^ ,]*\).*/\1/p')
KVER ?= $(or $(DEB_KVER),$(patsubst /usr/src/linux-headers-%,%,$(lastword \
	$(sort $(wildcard /usr/src/linux-headers-*-amd64)))))
KDIR ?= /usr/src/linux-headers-$(KVER)

KBUILD = $(MAKE) -C $(KDIR) M=$(DRV) CONFIG_VIRTIO_MEM=m

SRCS := $(wildcard $(DRV)/*.c $(DRV)/*.h) $(TOP)/include/uapi/linux/virtio_mem.h

.PHONY: all module module-fi module-6.12 clean distclean deps check demo bench checkpatch sparse \
	modules_install unit print-kver print-kver-6.12 check-module check-6.12 check-builtin kernel \
	kernel-check mutants

all: module

module: $(DRV)/virtio_mem.ko

# The tests' build, with fault injection, from a copy of the sources: the
# module users load has none of it.
FI_DIR := $(BUILD)/fault-injection
FI_KO := $(FI_DIR)/drivers/virtio/virtio_mem.ko

module-fi: $(FI_KO)

# $(call copy_build,dir,kdir,extra make arguments): build the module from
# a copy of the sources in dir, against the kernel headers in kdir.
define copy_build
	@test -d $(2) || { echo "no kernel headers at $(2):" \
		"run tools/testing/virtio-mem/deps.sh or set KDIR" >&2; exit 1; }
	mkdir -p $(1)/drivers/virtio $(1)/include/uapi/linux
	cp -u $(filter-out %.mod.c,$(wildcard $(DRV)/*.[ch])) $(DRV)/Makefile \
		$(1)/drivers/virtio/
	cp -u $(TOP)/include/uapi/linux/virtio_mem.h $(1)/include/uapi/linux/
	$(MAKE) -C $(2) M=$(1)/drivers/virtio CONFIG_VIRTIO_MEM=m $(3) modules
endef

$(FI_KO): $(SRCS) $(DRV)/Makefile
	$(call copy_build,$(FI_DIR),$(KDIR),CONFIG_VIRTIO_MEM_FAULT_INJECTION=y)

# Debian 12's second series (linux-headers-6.12-amd64): the same sources,
# built for the tests that run on its image too (make check), plain and
# with fault injection.
KVER_612 = $(shell dpkg-query -W -f='$${Depends}' linux-headers-6.12-amd64 \
	2>/dev/null | sed -n 's/^linux-headers-\([^ ,]*\).*/\1/p')
KDIR_612 = /usr/src/linux-headers-$(KVER_612)
S612_DIR := $(BUILD)/series-6.12
S612_KO := $(S612_DIR)/drivers/virtio/virtio_mem.ko
S612_FI_DIR := $(BUILD)/series-6.12-fi
S612_FI_KO := $(S612_FI_DIR)/drivers/virtio/virtio_mem.ko

module-6.12: $(S612_KO) $(S612_FI_KO)

$(S612_KO): $(SRCS) $(DRV)/Makefile
	$(call copy_build,$(S612_DIR),$(KDIR_612),)

$(S612_FI_KO): $(SRCS) $(DRV)/Makefile
	$(call copy_build,$(S612_FI_DIR),$(KDIR_612),CONFIG_VIRTIO_MEM_FAULT_INJECTION=y)

# A build against other headers (make KDIR=...) must not count as done.
KDIR_STAMP := $(DRV)/.kdir
$(shell [ "$$(cat $(KDIR_STAMP) 2>/dev/null)" = "$(KDIR)" ] || \
	echo "$(KDIR)" > $(KDIR_STAMP))

$(DRV)/virtio_mem.ko: $(SRCS) $(DRV)/Makefile $(KDIR_STAMP)
	@test -d $(KDIR) || { echo "no kernel headers at $(KDIR):" \
		"run tools/testing/virtio-mem/deps.sh or set KDIR" >&2; exit 1; }
	$(KBUILD) modules

# The test kernel's source and object tree stay (make kernel is then a
# relink); distclean removes them too.
clean:
	$(KBUILD) clean 2>/dev/null || true
	rm -rf $(FI_DIR) $(BUILD)/logs $(BUILD)/mutants

distclean: clean
	rm -rf $(BUILD)

deps:
	$(TESTDIR)/deps.sh

print-kver:
	@echo $(KVER)

print-kver-6.12:
	@echo $(KVER_612)

# updates/ comes before the distribution's kernel/ in depmod's search order.
modules_install: module
	$(KBUILD) INSTALL_MOD_DIR=updates modules_install
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KVER)

# The version is dkms.conf's PACKAGE_VERSION; the driver's MODULE_VERSION()
# must say the same (dkms installs over the kernel's own module only if the
# versions differ, and the kernel's has none).
PKG_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"$$/\1/p' $(TOP)/dkms.conf)
DISTDIR ?= $(TOP)
DIST_TAR := $(abspath $(DISTDIR))/virtio-mem-$(PKG_VERSION).tar.gz
# What DKMS builds and installs from, with the documentation.
DIST_FILES := dkms.conf Makefile Kconfig README.md Documentation \
	include/uapi/linux/virtio_mem.h drivers/virtio/Makefile \
	drivers/virtio/.kunitconfig \
	$(patsubst $(TOP)/%,%,$(filter-out %.mod.c,$(wildcard $(DRV)/*.[ch])))

.PHONY: dist deb check-deb print-version

print-version:
	@echo $(PKG_VERSION)

dist:
	@v=$$(sed -n 's/^MODULE_VERSION("\(.*\)");$$/\1/p' \
		$(DRV)/virtio_mem_core.c); \
	if [ -z "$(PKG_VERSION)" ] || [ "$$v" != "$(PKG_VERSION)" ]; then \
		echo "dist: dkms.conf has version '$(PKG_VERSION)', MODULE_VERSION" \
			"in virtio_mem_core.c '$$v': they must agree" >&2; \
		exit 1; \
	fi
	mkdir -p $(dir $(DIST_TAR))
	tar -C $(TOP) -czf $(DIST_TAR).tmp --sort=name --owner=0 --group=0 \
		--numeric-owner --transform 's,^,virtio-mem-$(PKG_VERSION)/,' \
		$(DIST_FILES)
	mv $(DIST_TAR).tmp $(DIST_TAR)
	@echo "dist: $(DIST_TAR)"

# virtio-mem-dkms_VERSION_all.deb (in DISTDIR): the sources of make dist,
# packaged with debhelper and dh-dkms as Debian packages its DKMS modules
# (tools/packaging/debian/); installing it builds the module for every
# installed kernel of a tested series, and for each one installed later.
DEB_DIR := $(BUILD)/deb
DEB_SRC := $(DEB_DIR)/virtio-mem-$(PKG_VERSION)
DEB := virtio-mem-dkms_$(PKG_VERSION)_all.deb

deb:
	$(TESTDIR)/deps.sh --deb
	rm -rf $(DEB_DIR)
	$(MAKE) dist DISTDIR=$(DEB_DIR)
	tar -C $(DEB_DIR) -xzf $(DEB_DIR)/virtio-mem-$(PKG_VERSION).tar.gz
	cp -r $(TOP)/tools/packaging/debian $(DEB_SRC)/debian
	sed -e 's/@VERSION@/$(PKG_VERSION)/' \
		-e "s/@COMMIT@/$$(git -C $(TOP) rev-parse --short=12 HEAD \
			2>/dev/null || echo unknown)/" \
		-e "s/@DATE@/$$(date -R)/" \
		$(DEB_SRC)/debian/changelog.in >$(DEB_SRC)/debian/changelog
	rm $(DEB_SRC)/debian/changelog.in
	cd $(DEB_SRC) && dpkg-buildpackage -b -us -uc
	mkdir -p $(abspath $(DISTDIR))
	cp $(DEB_DIR)/$(DEB) $(abspath $(DISTDIR))/
	@echo "deb: $(abspath $(DISTDIR))/$(DEB)"

# Not part of check (it downloads a Debian root and three kernels): make
# deb, then install the package in a scratch root and check that DKMS
# builds the module at install and for kernels installed afterwards.
check-deb:
	$(MAKE) deb DISTDIR=$(BUILD)/deb-out
	$(TESTDIR)/deb-check.sh $(BUILD)/deb-out/$(DEB)

# Host-side unit tests of the pure logic; KUnit covers it in-kernel.
unit:
	$(MAKE) -C $(TESTDIR)/unit run

# One pytest run over everything, so that its closing line counts every
# test. A module that fails to build stops it before any test runs. The
# test kernel (make kernel-check: W=1 and sparse too) builds meanwhile, in
# the background: the module tests leave the 2 cores idle much of the
# time. The built-in tests come last and wait for it; they fail if it
# fails (and so does check), and refuse a bzImage older than its sources.
# The tests of series-6.12.tests run in the same session a second time,
# as NAME@6.12, on Debian's 6.12 image with the module built for it.
KERNEL_STATUS = $(BUILD)/logs/kernel-check.status
KERNEL_LOG = $(BUILD)/logs/kernel-check.log

check: deps
	mkdir -p $(BUILD)/logs
	rm -f $(KERNEL_STATUS)
	# Unpacked before anything runs on it: checkpatch and the build.
	$(MAKE) $(LINUX_SRC)/.unpacked
	@test -n "$(KVER_612)" || { echo "no linux-headers-6.12-amd64:" \
		"run tools/testing/virtio-mem/deps.sh" >&2; exit 1; }
	{ $(MAKE) kernel-check >$(KERNEL_LOG) 2>&1; \
	  echo $$? >$(KERNEL_STATUS); } & \
	$(MAKE) module module-fi module-6.12 && \
	VMTEST_BZIMAGE=$(KERNEL_OUT)/arch/x86/boot/bzImage \
		VMTEST_KERNEL_STATUS=$(KERNEL_STATUS) VMTEST_STRICT=1 \
		VMTEST_612_KVER=$(KVER_612) VMTEST_612_KO=$(S612_KO) \
		VMTEST_612_FI_KO=$(S612_FI_KO) \
		$(TESTDIR)/run-tests.sh $(TESTS); rc=$$?; wait; \
	if [ "$$(cat $(KERNEL_STATUS))" != 0 ]; then \
		tail -40 $(KERNEL_LOG); echo "make kernel-check failed" >&2; \
		exit 1; \
	fi; exit $$rc

# The tests of series-6.12.tests alone, on Debian's 6.12 image.
SERIES_612 = VMTEST_KVER=$(KVER_612) VMEM_KO=$(S612_KO) \
	VMEM_FI_KO=$(S612_FI_KO) VMTEST_ONLY=$(TESTDIR)/series-6.12.tests

check-6.12: deps
	$(MAKE) module-6.12
	$(SERIES_612) $(TESTDIR)/run-tests.sh $(TESTS) || [ $$? -eq 5 ]

# The halves alone; pytest's 5 (nothing selected, e.g. by TESTS=-k ...)
# is not a failure. The module half needs the kernel source too: KUnit
# results are read with its kunit.py (tests/test_ktap.py).
check-module: deps
	$(MAKE) module module-fi
	$(MAKE) $(LINUX_SRC)/.unpacked
	$(TESTDIR)/run-tests.sh -m 'not builtin' $(TESTS) || [ $$? -eq 5 ]

check-builtin: deps
	$(MAKE) kernel-check
	VMTEST_BZIMAGE=$(KERNEL_OUT)/arch/x86/boot/bzImage \
		$(TESTDIR)/run-tests.sh -m builtin $(TESTS) || [ $$? -eq 5 ]

demo: deps
	$(MAKE) module
	$(PYTHON) $(TESTDIR)/demo.py

# Not part of check: compares timings with Debian's virtio_mem.ko, on each
# series with its own (BENCH_SERIES="6.1 6.12" by default), one after the
# other on the same QEMU; each run keeps its own table.
BENCH_SERIES ?= 6.1 6.12

bench: deps
	$(MAKE) module module-6.12
	for s in $(BENCH_SERIES); do \
		case $$s in \
		6.1) $(PYTHON) $(TESTDIR)/bench.py $(BENCH_ARGS) ;; \
		6.12) VMTEST_KVER=$(KVER_612) VMEM_KO=$(S612_KO) \
			$(PYTHON) $(TESTDIR)/bench.py $(BENCH_ARGS) ;; \
		*) echo "bench: unknown series $$s" >&2; false ;; \
		esac || exit 1; \
	done

# Not part of check: each mutant (a deliberate bug, tools/testing/
# virtio-mem/mutants.py) is built from a copy of the driver and must make
# one of its tests fail. MUTANTS_ARGS=--only NAME,... selects some.
mutants: deps
	$(MAKE) module
	$(PYTHON) $(TESTDIR)/mutants.py $(MUTANTS_ARGS)

# $(call untar,tarball,dir,members): unpack a Debian linux-source tarball
# (or only the named members of it) into dir, once; dir/.unpacked says done.
define untar
	@test -f $(1) || { echo "$(1) missing:" \
		"run tools/testing/virtio-mem/deps.sh" >&2; exit 1; }
	rm -rf $(2)
	mkdir -p $(2)
	tar -C $(2) --strip-components=1 -xf $(1) $(3)
	touch $(2)/.unpacked
endef

# Debian's linux-source, unpacked once: checkpatch runs inside it so that it
# knows the kernel's own identifiers; the built-in kernel is built from it.
LINUX_SRC ?= $(BUILD)/linux-source-6.1
LINUX_TAR := /usr/src/linux-source-6.1.tar.xz

$(LINUX_SRC)/.unpacked:
	$(call untar,$(LINUX_TAR),$(LINUX_SRC))

CHECKPATCH_FILES := $(filter-out %.mod.c,$(wildcard $(DRV)/*.[ch])) \
	$(TOP)/include/uapi/linux/virtio_mem.h

# 6.12's checkpatch: only its scripts, from linux-source-6.12.
CHECKPATCH_612 := $(BUILD)/checkpatch-6.12
LINUX_TAR_612 := /usr/src/linux-source-6.12.tar.xz

$(CHECKPATCH_612)/.unpacked:
	$(call untar,$(LINUX_TAR_612),$(CHECKPATCH_612),--wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch')

# CAMELCASE: the page-flag accessors (__SetPageOffline, ...) are generated by
# macros, so checkpatch cannot find their definitions; in-tree users of them
# get the same note. Both series' checkpatch must be clean.
CHECKPATCH_ARGS := --strict --show-types -q --terse \
	--ignore FILE_PATH_CHANGES,CAMELCASE -f $(CHECKPATCH_FILES)

checkpatch: $(LINUX_SRC)/.unpacked $(CHECKPATCH_612)/.unpacked
	cd $(LINUX_SRC) && ./scripts/checkpatch.pl $(CHECKPATCH_ARGS)
	$(CHECKPATCH_612)/scripts/checkpatch.pl --no-tree $(CHECKPATCH_ARGS)
	@echo "checkpatch: clean"

sparse:
	@test -d $(KDIR) || { echo "no kernel headers at $(KDIR)" >&2; exit 1; }
	mkdir -p $(BUILD)
	$(KBUILD) C=2 CHECK="sparse" modules 2>&1 | tee $(BUILD)/sparse.log
	@! grep -E 'warning:|error:' $(BUILD)/sparse.log
	@echo "sparse: clean"

# The guest kernel with the driver and its KUnit tests built in, from
# $(LINUX_SRC) with our files overlaid; incremental after the first build.
KERNEL_OUT ?= $(BUILD)/kernel-build
BUILD_KERNEL := LINUX_SRC=$(LINUX_SRC) KERNEL_OUT=$(KERNEL_OUT) \
	$(TESTDIR)/build-kernel.sh

kernel: deps $(LINUX_SRC)/.unpacked
	$(BUILD_KERNEL)

kernel-check: deps $(LINUX_SRC)/.unpacked
	$(BUILD_KERNEL) --check
