/*
 * fam_atomic.c - cross-node atomics on FAM: every node adds 1 to one shared
 * 64-bit counter <count> times with the CPU's atomic add (x86: lock xadd).
 * If the adds are atomic across nodes the counter ends at nodes x count.
 *
 *   fam_atomic <device> <offset> <node 0..nodes-1> <nodes> <count>
 *
 * <device> is mapped whole-page at <offset> (page-aligned): an IVSHMEM BAR2
 * (/sys/bus/pci/devices/<bdf>/resource2) or a devdax device (/dev/daxX.Y).
 * Layout at <offset>: the counter, then at +64 one "arrived" byte and at +128
 * one "done" byte per node (plain stores: the barrier must not rely on the
 * atomics it measures). Prints "node=<i> ns=<loop time> counter=<final>
 * first=<value the first add returned> last=<value the last add returned>":
 * two nodes' [first, last] ranges overlap when their adds really interleaved.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAP_BYTES (2UL << 20) /* devdax mappings are 2 MiB aligned */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void wait_all(volatile unsigned char *flags, int nodes)
{
	for (;;) {
		int i, all = 1;

		for (i = 0; i < nodes; i++)
			all &= flags[i] != 0;
		if (all)
			return;
		__sync_synchronize();
	}
}

int main(int argc, char **argv)
{
	unsigned long offset;
	long count, i;
	int fd, node, nodes;
	unsigned char *map;
	volatile uint64_t *counter;
	volatile unsigned char *arrived, *done;
	uint64_t t0, t1, first = 0, last = 0;

	if (argc != 6) {
		fprintf(stderr, "usage: %s <device> <offset> <node> <nodes> <count>\n", argv[0]);
		return 2;
	}
	offset = strtoul(argv[2], NULL, 0);
	node = atoi(argv[3]);
	nodes = atoi(argv[4]);
	count = atol(argv[5]);
	if (offset % MAP_BYTES != 0 || node < 0 || nodes < 1 || nodes > 64 || node >= nodes) {
		fprintf(stderr, "%s: bad arguments\n", argv[0]);
		return 2;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	map = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
	if (map == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	counter = (volatile uint64_t *)map;
	arrived = map + 64;
	done = map + 128;

	arrived[node] = 1;
	__sync_synchronize();
	wait_all(arrived, nodes);
	t0 = now_ns();
	if (count > 0)
		first = __atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);
	for (i = 1; i < count - 1; i++)
		__atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);
	if (count > 1)
		last = __atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);
	t1 = now_ns();
	done[node] = 1;
	__sync_synchronize();
	wait_all(done, nodes);
	printf("node=%d ns=%" PRIu64 " counter=%" PRIu64 " first=%" PRIu64 " last=%" PRIu64 "\n",
	       node, t1 - t0, *counter, first, last);
	munmap(map, MAP_BYTES);
	close(fd);
	return 0;
}
