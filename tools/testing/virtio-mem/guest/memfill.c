// SPDX-License-Identifier: GPL-2.0
/*
 * memfill: hold memory with a verifiable pattern while the host resizes the
 * guest, then check that not one byte changed.
 *
 * Fills anonymous memory (mmap, MAP_POPULATE, every page written) and/or
 * files in a tmpfs, waits until a file appears or SIGUSR1 arrives, then
 * verifies everything and prints one line:
 *
 *	memfill: verified N MiB, corrupted C bytes (P passes while waiting)
 *
 * N counts what the last pass really compared, and the "filled" line before
 * it what really got written, so that a caller can check both against what
 * it asked for: a pass that skips memory cannot look complete.
 *
 * With -p START-END it also pins one of its anonymous pages whose physical
 * address lies in [START, END): vmsplice() hands the page to a pipe nobody
 * reads, and the pipe's reference keeps the page from migrating until
 * memfill exits. That is how a test puts an unmovable page into a
 * virtio-mem device's memory on purpose. It prints, before "filled":
 *
 *	memfill: pinned page at 0xADDR
 *
 * Exit code 0 if nothing was corrupted, 1 if something was, 2 on errors.
 * Every 64-bit word holds a value derived from the seed, the region and the
 * word's offset, so a page that moved to the wrong place, was lost (read as
 * zeroes) or was overwritten shows up. The hash runs once per 4 KiB page,
 * and each word adds its offset to it: under TCG a hash per word made
 * filling and checking a GiB take seconds.
 *
 * Built statically on the host (gcc -static -O2) for the vmtest initramfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024UL * 1024)
#define FILE_MB 64UL		/* size of each tmpfs file */
#define CHUNK MiB		/* file I/O unit */

static volatile sig_atomic_t go;
static uint64_t seed = 1;
/* Bytes written by fill(), and compared by check() since the last reset. */
static uint64_t filled_bytes, checked_bytes;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "memfill: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* splitmix64: cheap, and every input bit affects every output bit. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

#define PAGE_WORDS 512		/* 64-bit words in 4 KiB */
#define GOLDEN 0x9e3779b97f4a7c15ULL

/* What every word of page @page of region @region starts from. */
static uint64_t page_base(unsigned int region, uint64_t page)
{
	return mix(((uint64_t)region << 40 | page) ^ seed);
}

/* The value of word @i of region @region (0: anon, 1 + n: file n). */
static uint64_t pattern(unsigned int region, uint64_t i)
{
	return page_base(region, i / PAGE_WORDS) ^ (i * GOLDEN);
}

/* @first and @nwords are multiples of PAGE_WORDS (whole pages, MiB chunks). */
static void fill(uint64_t *w, size_t nwords, unsigned int region,
		 uint64_t first)
{
	for (size_t i = 0; i < nwords; i += PAGE_WORDS) {
		uint64_t base = page_base(region, (first + i) / PAGE_WORDS);

		for (size_t j = i; j < i + PAGE_WORDS; j++)
			w[j] = base ^ ((first + j) * GOLDEN);
	}
}

/* Number of bytes that differ from the pattern; reports the first one. */
static uint64_t check(const uint64_t *w, size_t nwords, unsigned int region,
		      uint64_t first)
{
	static int reported;
	uint64_t bad = 0;

	checked_bytes += nwords * 8;
	for (size_t i = 0; i < nwords; i++) {
		uint64_t x;

		if (i % PAGE_WORDS == 0) {
			uint64_t base = page_base(region, (first + i) / PAGE_WORDS);
			size_t j;

			/* The common case: the whole page as written. */
			for (j = i; j < i + PAGE_WORDS; j++)
				if (w[j] != (base ^ ((first + j) * GOLDEN)))
					break;
			if (j == i + PAGE_WORDS) {
				i += PAGE_WORDS - 1;
				continue;
			}
		}
		x = w[i] ^ pattern(region, first + i);
		if (!x)
			continue;
		for (int b = 0; b < 8; b++)
			bad += !!(x >> (8 * b) & 0xff);
		if (!reported++)
			fprintf(stderr,
				"memfill: first corruption: region %u offset 0x%llx: 0x%016llx, expected 0x%016llx\n",
				region, (unsigned long long)(first + i) * 8,
				(unsigned long long)w[i],
				(unsigned long long)pattern(region, first + i));
	}
	return bad;
}

static void file_name(char *buf, size_t len, const char *dir, unsigned int n)
{
	snprintf(buf, len, "%s/memfill.%u", dir, n);
}

static void fill_file(const char *dir, unsigned int n, size_t mb,
		      uint64_t *buf)
{
	char name[4096];
	int fd;

	file_name(name, sizeof(name), dir, n);
	fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(name);
	for (size_t off = 0; off < mb * MiB; off += CHUNK) {
		fill(buf, CHUNK / 8, 1 + n, off / 8);
		if (write(fd, buf, CHUNK) != (ssize_t)CHUNK)
			die(name);
		filled_bytes += CHUNK;
	}
	if (close(fd))
		die(name);
}

static uint64_t check_file(const char *dir, unsigned int n, size_t mb,
			   uint64_t *buf)
{
	char name[4096];
	uint64_t bad = 0;
	int fd;

	file_name(name, sizeof(name), dir, n);
	fd = open(name, O_RDONLY);
	if (fd < 0)
		die(name);
	for (size_t off = 0; off < mb * MiB; off += CHUNK) {
		ssize_t got = read(fd, buf, CHUNK);

		if (got < 0)
			die(name);
		if (got != (ssize_t)CHUNK) {
			/* A short file: count what is missing as corrupted. */
			fprintf(stderr, "memfill: %s: short at %zu\n", name, off);
			bad += mb * MiB - off - (got > 0 ? got : 0);
			if (got > 0)
				bad += check(buf, got / 8, 1 + n, off / 8);
			break;
		}
		bad += check(buf, CHUNK / 8, 1 + n, off / 8);
	}
	close(fd);
	return bad;
}

static uint64_t check_all(const uint64_t *anon, size_t anon_mb,
			  const char *dir, size_t file_mb, uint64_t *buf)
{
	uint64_t bad = 0;
	unsigned int n;

	if (anon_mb)
		bad += check(anon, anon_mb * MiB / 8, 0, 0);
	for (n = 0; n * FILE_MB < file_mb; n++) {
		size_t mb = file_mb - n * FILE_MB;

		bad += check_file(dir, n, mb < FILE_MB ? mb : FILE_MB, buf);
	}
	return bad;
}

/* Physical address of the page at @addr (present, we are root), or 0. */
static uint64_t phys_addr(int pagemap, const void *addr)
{
	uint64_t e;
	long psz = sysconf(_SC_PAGESIZE);
	off_t off = (uintptr_t)addr / psz * sizeof(e);

	if (pread(pagemap, &e, sizeof(e), off) != sizeof(e))
		die("pagemap");
	if (!(e >> 63) || !(e & ((1ULL << 55) - 1)))
		return 0;
	return (e & ((1ULL << 55) - 1)) * psz;
}

/*
 * Pin the first page of @anon that lies in [@start, @end) by splicing it
 * into a pipe that is never read; the pipe stays open until exit.
 */
static void pin_page(uint64_t *anon, size_t anon_mb, uint64_t start,
		     uint64_t end)
{
	long psz = sysconf(_SC_PAGESIZE);
	int pagemap, pfd[2];

	pagemap = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap < 0)
		die("/proc/self/pagemap");
	for (size_t off = 0; off < anon_mb * MiB; off += psz) {
		char *page = (char *)anon + off;
		uint64_t pa = phys_addr(pagemap, page);
		struct iovec iov = { page, psz };

		if (pa < start || pa >= end)
			continue;
		if (pipe(pfd) || vmsplice(pfd[1], &iov, 1, 0) != psz)
			die("vmsplice");
		printf("memfill: pinned page at 0x%llx\n",
		       (unsigned long long)pa);
		close(pagemap);
		return;
	}
	errno = ENOENT;
	die("no anonymous page in the range to pin");
}

static void usage(void)
{
	fprintf(stderr,
		"usage: memfill [-a MiB] [-f MiB] [-d DIR] [-s SEED] [-w PATH] [-l]\n"
		"               [-p START-END]\n"
		"  -a MiB   anonymous memory to fill\n"
		"  -f MiB   tmpfs files to fill (in DIR, default /dev/shm, %lu MiB each)\n"
		"  -s SEED  pattern seed (default 1)\n"
		"  -w PATH  verify once PATH exists (default: on SIGUSR1)\n"
		"  -l       while waiting, verify over and over\n"
		"  -p START-END  pin one anonymous page in that physical range\n",
		FILE_MB);
	exit(2);
}

int main(int argc, char **argv)
{
	size_t anon_mb = 0, file_mb = 0;
	const char *dir = "/dev/shm", *wait_path = NULL;
	uint64_t *anon = NULL, *buf, bad = 0, passes = 0;
	unsigned long long pin_start = 0, pin_end = 0;
	int loop = 0, opt;
	unsigned int n;

	while ((opt = getopt(argc, argv, "a:f:d:s:w:lp:")) != -1) {
		switch (opt) {
		case 'a': anon_mb = strtoul(optarg, NULL, 0); break;
		case 'f': file_mb = strtoul(optarg, NULL, 0); break;
		case 'd': dir = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'w': wait_path = optarg; break;
		case 'l': loop = 1; break;
		case 'p':
			if (sscanf(optarg, "%lli-%lli", &pin_start,
				   &pin_end) != 2 || pin_start >= pin_end)
				usage();
			break;
		default: usage();
		}
	}
	if (optind != argc || (!anon_mb && !file_mb) || (pin_end && !anon_mb))
		usage();
	signal(SIGUSR1, on_usr1);

	buf = malloc(CHUNK);
	if (!buf)
		die("malloc");
	if (anon_mb) {
		anon = mmap(NULL, anon_mb * MiB, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (anon == MAP_FAILED)
			die("mmap");
		fill(anon, anon_mb * MiB / 8, 0, 0);
		filled_bytes += anon_mb * MiB;
		if (pin_end)
			pin_page(anon, anon_mb, pin_start, pin_end);
	}
	for (n = 0; n * FILE_MB < file_mb; n++) {
		size_t mb = file_mb - n * FILE_MB;

		fill_file(dir, n, mb < FILE_MB ? mb : FILE_MB, buf);
	}
	printf("memfill: filled %llu MiB (%zu MiB anon + %zu MiB files in %s), seed %llu, pid %d\n",
	       (unsigned long long)(filled_bytes / MiB), anon_mb, file_mb, dir,
	       (unsigned long long)seed, (int)getpid());
	fflush(stdout);

	for (;;) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		if (go || (wait_path && access(wait_path, F_OK) == 0))
			break;
		if (loop) {
			bad += check_all(anon, anon_mb, dir, file_mb, buf);
			passes++;
		} else {
			nanosleep(&ts, NULL);
		}
	}

	checked_bytes = 0;
	bad += check_all(anon, anon_mb, dir, file_mb, buf);
	printf("memfill: verified %llu MiB, corrupted %llu bytes (%llu passes while waiting)\n",
	       (unsigned long long)(checked_bytes / MiB),
	       (unsigned long long)bad, (unsigned long long)passes);
	return bad ? 1 : 0;
}
