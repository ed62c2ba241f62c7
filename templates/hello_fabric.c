/*
 * hello_fabric.c - minimal access to FAME fabric-attached memory from a guest.
 *
 * In FAME every VM gets the same host file, presented one of two ways:
 *
 * IVSHMEM: QEMU's "ivshmem-plain" PCI device (vendor 0x1af4, device 0x1110).
 * The shared memory is BAR2 of that device.  No kernel driver is needed:
 * Linux exposes each memory BAR as /sys/bus/pci/devices/<bdf>/resource<N>,
 * which can be mmap()ed by root.  (Such files only support mmap.)
 *
 * CXL: a CXL type-3 persistent-memory device; the node's fame-fam unit makes
 * a region and a raw namespace, /dev/pmemN, whose offset X is offset X of
 * the host file.  It is read and written with O_DIRECT: the page cache of a
 * block device would keep serving stale bytes after another node wrote.
 *
 * Without -d the tool uses /dev/fam, the link fame-fam makes to whichever
 * device this node has (refusing when /run/fame/fam.status says FAILED), and
 * falls back to the first IVSHMEM device when there is no /dev/fam.
 *
 * Usage:
 *   hello_fabric [-d <bdf>] info
 *   hello_fabric [-d <bdf>] write <offset> <string>
 *   hello_fabric [-d <bdf>] read  <offset> <len>
 *
 * Offsets and lengths accept decimal, 0x-hex or 0-octal.  Exit status is 0 on
 * success, 1 on runtime errors and 2 on usage errors.
 *
 * C99 + POSIX.1-2008 + Linux's O_DIRECT; build with e.g.
 *   gcc -O2 -o hello_fabric hello_fabric.c
 */
#define _GNU_SOURCE /* O_DIRECT */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Overridable at build time so the tool can be tested against a fake tree. */
#ifndef PCI_DEVICES
#define PCI_DEVICES "/sys/bus/pci/devices"
#endif
#ifndef FAM_LINK
#define FAM_LINK "/dev/fam"
#endif
#ifndef FAM_STATUS
#define FAM_STATUS "/run/fame/fam.status"
#endif
/* O_DIRECT transfers are whole, aligned blocks; 4096 covers every logical block size. */
#define BLOCK 4096UL
#define IVSHMEM_VENDOR 0x1af4UL
#define IVSHMEM_DEVICE 0x1110UL

static const char *prog = "hello_fabric";

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [-d <bdf>] info\n"
		"       %s [-d <bdf>] write <offset> <string>\n"
		"       %s [-d <bdf>] read <offset> <len>\n",
		prog, prog, prog);
	exit(2);
}

/* Read a sysfs attribute such as "0x1af4\n" as a number; -1 on failure. */
static long read_hex_attr(const char *bdf, const char *attr)
{
	char path[PATH_MAX], buf[32];
	FILE *f;
	long val = -1;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/%s", bdf, attr);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fgets(buf, sizeof(buf), f) != NULL)
		val = strtol(buf, NULL, 16);
	fclose(f);
	return val;
}

static int is_ivshmem(const char *bdf)
{
	return read_hex_attr(bdf, "vendor") == (long)IVSHMEM_VENDOR &&
	       read_hex_attr(bdf, "device") == (long)IVSHMEM_DEVICE;
}

/*
 * Find the first IVSHMEM device in BDF order (scandir + alphasort makes the
 * choice deterministic when a VM has several).  Returns a malloc()ed BDF.
 */
static char *find_ivshmem(void)
{
	struct dirent **ents;
	char *found = NULL;
	int i, n;

	n = scandir(PCI_DEVICES, &ents, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: cannot list %s: %s\n", prog, PCI_DEVICES,
			strerror(errno));
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (found == NULL && ents[i]->d_name[0] != '.' &&
		    is_ivshmem(ents[i]->d_name))
			found = strdup(ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	if (found == NULL)
		fprintf(stderr, "%s: no IVSHMEM device (%04lx:%04lx) found under %s\n",
			prog, IVSHMEM_VENDOR, IVSHMEM_DEVICE, PCI_DEVICES);
	return found;
}

/* Parse a non-negative integer (any C base); exits with a usage error if bad. */
static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
		fprintf(stderr, "%s: invalid %s '%s'\n", prog, what, s);
		exit(2);
	}
	return (uint64_t)v;
}

/* Fail unless [offset, offset+len) lies inside a BAR of 'size' bytes. */
static int check_range(uint64_t offset, uint64_t len, uint64_t size)
{
	/* Written as two comparisons so that offset+len cannot overflow. */
	if (offset > size || len > size - offset) {
		fprintf(stderr,
			"%s: range offset=%" PRIu64 " len=%" PRIu64
			" exceeds BAR2 size %" PRIu64 "\n",
			prog, offset, len, size);
		return -1;
	}
	return 0;
}

/* Refuse when the boot unit reported that FAM did not come up. */
static int fam_failed(void)
{
	char line[512];
	FILE *f = fopen(FAM_STATUS, "r");
	int failed = 0;

	if (f == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) != NULL && strncmp(line, "FAILED", 6) == 0) {
		fprintf(stderr, "%s: FAM is not available on this node (%s): %s", prog,
			FAM_STATUS, line);
		failed = 1;
	}
	fclose(f);
	return failed;
}

/*
 * A block device (CXL: /dev/pmemN): O_DIRECT reads and writes of the aligned
 * blocks around [offset, offset+len), so every read sees the memory itself.
 * A write reads, patches and writes back whole blocks: bytes another node
 * writes into the same 4 KiB block at the same moment may be lost.
 */
static int block_access(const char *path, int writing, const char *cmd,
			const char *arg1, const char *arg2)
{
	uint64_t size, offset, len, start, end, i;
	unsigned char *buf;
	off_t sz;
	int fd, rc = 0;

	fd = open(path, (writing ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "%s: open %s: %s\n", prog, path, strerror(errno));
		return 1;
	}
	sz = lseek(fd, 0, SEEK_END);
	if (sz <= 0) {
		fprintf(stderr, "%s: cannot determine size of %s\n", prog, path);
		close(fd);
		return 1;
	}
	size = (uint64_t)sz;
	if (strcmp(cmd, "info") == 0) {
		printf("device=%s size=%" PRIu64 "\n", path, size);
		close(fd);
		return 0;
	}
	offset = parse_u64(arg1, "offset");
	len = writing ? (uint64_t)strlen(arg2) + 1 : parse_u64(arg2, "length");
	if (check_range(offset, len, size) != 0) {
		close(fd);
		return 1;
	}
	start = offset / BLOCK * BLOCK;
	end = (offset + len + BLOCK - 1) / BLOCK * BLOCK;
	if (end > size)
		end = size;
	if (end == start) { /* len 0 at the very end */
		if (!writing)
			putchar('\n');
		close(fd);
		return 0;
	}
	if (posix_memalign((void **)&buf, BLOCK, (size_t)(end - start)) != 0) {
		fprintf(stderr, "%s: out of memory\n", prog);
		close(fd);
		return 1;
	}
	if (pread(fd, buf, (size_t)(end - start), (off_t)start) != (ssize_t)(end - start)) {
		fprintf(stderr, "%s: read %s: %s\n", prog, path, strerror(errno));
		rc = 1;
	} else if (writing) {
		memcpy(buf + (offset - start), arg2, (size_t)len); /* with the NUL */
		if (pwrite(fd, buf, (size_t)(end - start), (off_t)start) != (ssize_t)(end - start) ||
		    fsync(fd) != 0) {
			fprintf(stderr, "%s: write %s: %s\n", prog, path, strerror(errno));
			rc = 1;
		}
	} else {
		for (i = 0; i < len && buf[offset - start + i] != '\0'; i++)
			putchar(buf[offset - start + i]);
		putchar('\n');
	}
	free(buf);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	const char *bdf_opt = NULL;
	char *bdf;
	char path[PATH_MAX], target[PATH_MAX];
	struct stat st;
	volatile unsigned char *bar;
	void *map;
	uint64_t size, offset, len, i;
	int fd, opt, writing, rc = 0;

	while ((opt = getopt(argc, argv, "d:h")) != -1) {
		switch (opt) {
		case 'd':
			bdf_opt = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	if (strcmp(argv[0], "info") == 0) {
		if (argc != 1)
			usage();
	} else if (strcmp(argv[0], "write") == 0 || strcmp(argv[0], "read") == 0) {
		if (argc != 3)
			usage();
	} else {
		usage();
	}
	writing = strcmp(argv[0], "write") == 0;

	if (bdf_opt == NULL && fam_failed())
		return 1;
	if (bdf_opt == NULL && stat(FAM_LINK, &st) == 0) {
		if (S_ISBLK(st.st_mode))
			return block_access(FAM_LINK, writing, argv[0],
					    argc > 1 ? argv[1] : NULL,
					    argc > 2 ? argv[2] : NULL);
		/* IVSHMEM: /dev/fam -> .../<bdf>/resource2; map it as below. */
		if (S_ISREG(st.st_mode)) {
			char *slash;
			ssize_t n = readlink(FAM_LINK, target, sizeof(target) - 1);

			if (n > 0) {
				target[n] = '\0';
				slash = strrchr(target, '/');
				if (slash != NULL && strcmp(slash, "/resource2") == 0) {
					*slash = '\0';
					slash = strrchr(target, '/');
					if (slash != NULL)
						bdf_opt = slash + 1;
				}
			}
		}
	}
	if (bdf_opt != NULL) {
		/* The BDF becomes a path component: refuse anything path-like. */
		if (strchr(bdf_opt, '/') != NULL || bdf_opt[0] == '.') {
			fprintf(stderr, "%s: invalid BDF '%s'\n", prog, bdf_opt);
			return 2;
		}
		if (!is_ivshmem(bdf_opt)) {
			fprintf(stderr, "%s: %s is not an IVSHMEM device\n", prog,
				bdf_opt);
			return 1;
		}
		bdf = strdup(bdf_opt);
	} else {
		bdf = find_ivshmem();
	}
	if (bdf == NULL)
		return 1;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/resource2", bdf);
	fd = open(path, writing ? O_RDWR : O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "%s: open %s: %s\n", prog, path, strerror(errno));
		return 1;
	}
	/* The size of a sysfs resource file is the size of the BAR. */
	if (fstat(fd, &st) != 0 || st.st_size <= 0) {
		fprintf(stderr, "%s: cannot determine size of %s\n", prog, path);
		return 1;
	}
	size = (uint64_t)st.st_size;

	if (strcmp(argv[0], "info") == 0) {
		printf("bdf=%s bar2_size=%" PRIu64 "\n", bdf, size);
		return 0;
	}

	offset = parse_u64(argv[1], "offset");
	len = writing ? (uint64_t)strlen(argv[2]) + 1 /* NUL */
		      : parse_u64(argv[2], "length");
	if (check_range(offset, len, size) != 0)
		return 1;

	/* Map the whole BAR: sysfs resource files need a zero file offset. */
	map = mmap(NULL, (size_t)size, writing ? PROT_READ | PROT_WRITE : PROT_READ,
		   MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "%s: mmap %s: %s\n", prog, path, strerror(errno));
		return 1;
	}
	close(fd);
	/* volatile: this is device memory that other VMs change under us. */
	bar = (volatile unsigned char *)map;

	if (writing) {
		const char *s = argv[2];

		for (i = 0; i < len; i++) /* includes the terminating NUL */
			bar[offset + i] = (unsigned char)s[i];
		if (msync(map, (size_t)size, MS_SYNC) != 0) {
			fprintf(stderr, "%s: msync: %s\n", prog, strerror(errno));
			rc = 1;
		}
	} else {
		for (i = 0; i < len && bar[offset + i] != '\0'; i++)
			putchar(bar[offset + i]);
		putchar('\n');
	}

	munmap(map, (size_t)size);
	free(bdf);
	return rc;
}
