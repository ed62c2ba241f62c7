#!/usr/bin/python3
# fame: LFS throughput workload, run where an /lfs is mounted (a node, or the
# no-VM lab of bench/lfs.ts). Prints one JSON object: per run and phase the
# wall time, the bytes, and what the daemon's counters (getxattr
# user.fame.stats on the mount's root) moved by: FUSE requests by type with
# the time spent in the daemon, and Librarian round trips by command.
#
#   lfs_workload.py --mount /lfs --shadow BAR2-or-FAM-file --offsets 'lfs_offsets'
#                   [--mib 64] [--runs 3] [--random 1024] [--floor DIR]
#
# Phases of a run, each on a fresh file of MIB MiB:
#   seq8    write it sequentially in 8 MiB blocks (one book per write(2)),
#           close, reopen and read it back the same way
#   seq1    the same with 1 MiB blocks
#   seqd    the same with 1 MiB blocks and O_DIRECT (no page cache: FUSE
#           moves the bytes between the daemon and the caller's buffer)
#   mapped  the seq8 file's books written and read through mappings of the
#           shadow file (a node's BAR2) at the offsets --offsets prints: FAM
#           itself, what /lfs is compared with
#   rewrite the seq8 file written again through /lfs in place (8 MiB blocks):
#           no new books, FAM pages written before, like the mapped phase's
#   rand4k  RANDOM 4 KiB pwrite(2)s at random 4 KiB-aligned offsets of the
#           seq1 file, close, reopen, RANDOM 4 KiB pread(2)s (checked)
#   rm      rm of the three files until the Librarian counts their books free
#           (statvfs of the mount)
#
# With --floor DIR (root): the seq* and rand4k phases again on a file
# system that does nothing but copy (fusepy with the same options as the LFS
# daemon, bytes in anonymous memory) mounted at DIR: what FUSE and fusepy
# cost on this machine before any LFS work (phases floor_*).

import argparse
import ctypes
import errno
import json
import mmap
import os
import random
import shlex
import subprocess
import time

MiB = 1 << 20
STATS = "user.fame.stats"
HEARTBEAT = ("update_node_soc_status", "update_node_mc_status")


def stats(mount):
    try:
        return json.loads(os.getxattr(mount, STATS))
    except OSError:
        return None  # an adapter without counters


def delta(before, after):
    if before is None or after is None:
        return None
    ops = {}
    for k, v in after["ops"].items():
        b = before["ops"].get(k, {"count": 0, "seconds": 0.0, "bytes": 0, "sizes": {}})
        if v["count"] != b["count"]:
            sizes = {s: n - b["sizes"].get(s, 0) for s, n in v["sizes"].items()}
            ops[k] = {
                "count": v["count"] - b["count"],
                "seconds": v["seconds"] - b["seconds"],
                "bytes": v["bytes"] - b["bytes"],
                "sizes": {s: n for s, n in sizes.items() if n},
            }
    rt = {}
    for k, v in after["librarian"].items():
        n = v - before["librarian"].get(k, 0)
        if n and k not in HEARTBEAT:
            rt[k] = n
    return {"ops": ops, "round_trips": rt}


class Phase:
    def __init__(self, mount, nbytes):
        self.mount = mount
        self.nbytes = nbytes

    def __enter__(self):
        self.before = stats(self.mount)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.daemon = delta(self.before, stats(self.mount))
        return False

    def result(self):
        return {"seconds": self.seconds, "bytes": self.nbytes, "daemon": self.daemon}


def write_file(path, data, block, flags=0, create=True):
    """Writes data in blocks: a new (or truncated) file, or in place with create=False."""
    fd = os.open(path, os.O_WRONLY | flags | (os.O_CREAT | os.O_TRUNC if create else 0), 0o644)
    try:
        view = memoryview(data)
        for i in range(0, len(data), block):
            os.write(fd, view[i:i + block])
    finally:
        os.close(fd)


def read_file(path, n, block, flags=0):
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        out = mmap.mmap(-1, n) if flags else bytearray(n)  # page-aligned for O_DIRECT
        view = memoryview(out)
        done = 0
        while done < n:
            got = os.readv(fd, [view[done:done + block]])
            if not got:
                break
            done += got
        return bytes(out[:done])
    finally:
        os.close(fd)


def free_books(mount):
    return os.statvfs(mount).f_bfree


def aligned(data):
    """A page-aligned copy of data, as O_DIRECT callers use (FUSE splits a
    request at the caller's page boundaries)."""
    m = mmap.mmap(-1, len(data))
    m[:] = data
    return m


def sequential(mount, data, res, prefix=""):
    n = len(data)
    for name, block, flags in (("seq8", 8 * MiB, 0), ("seq1", MiB, 0), ("seqd", MiB, os.O_DIRECT)):
        path = os.path.join(mount, "bench-" + name)
        src = aligned(data) if flags else data
        with Phase(mount, n) as w:
            write_file(path, src, block, flags)
        with Phase(mount, n) as r:
            back = read_file(path, n, block, flags)
        if back != data:
            raise SystemExit("%s%s: read back differs from what was written" % (prefix, name))
        res[prefix + name + "_write"] = w.result()
        res[prefix + name + "_read"] = r.result()


def random4k(mount, path, data, count, seed, res, prefix=""):
    n = len(data)
    rnd = random.Random(seed)
    model = bytearray(data)
    offs = [rnd.randrange(n // 4096) * 4096 for _ in range(count)]
    blocks = [os.urandom(4096) for _ in range(count)]
    with Phase(mount, 4096 * count) as w:
        fd = os.open(path, os.O_RDWR)
        try:
            for off, blk in zip(offs, blocks):
                os.pwrite(fd, blk, off)
        finally:
            os.close(fd)
    for off, blk in zip(offs, blocks):
        model[off:off + 4096] = blk
    roffs = [rnd.randrange(n // 4096) * 4096 for _ in range(count)]
    with Phase(mount, 4096 * count) as r:
        fd = os.open(path, os.O_RDONLY)
        try:
            got = [os.pread(fd, 4096, off) for off in roffs]
        finally:
            os.close(fd)
    for off, g in zip(roffs, got):
        if g != model[off:off + 4096]:
            raise SystemExit("%srand4k: a 4 KiB read at %d differs from what was written" % (prefix, off))
    res[prefix + "rand4k_write"] = w.result()
    res[prefix + "rand4k_read"] = r.result()


def mapped(a, path, data, res):
    n = len(data)
    info = json.loads(subprocess.check_output(shlex.split(a.offsets) + [path]))
    bs = info["book_size"]
    fd = os.open(a.shadow, os.O_RDWR)
    try:
        maps = [
            mmap.mmap(fd, bs, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                      offset=b["fam_offset"])
            for b in info["books"]
        ]
    finally:
        os.close(fd)
    t0 = time.perf_counter()
    for k, m in enumerate(maps):
        m[0:bs] = data[k * bs:(k + 1) * bs]
    mw = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = b"".join(m[0:bs] for m in maps)[:n]
    mr = time.perf_counter() - t0
    for m in maps:
        m.close()
    if back != data:
        raise SystemExit("mapped: read back differs")
    res["mapped_write"] = {"seconds": mw, "bytes": n, "daemon": None}
    res["mapped_read"] = {"seconds": mr, "bytes": n, "daemon": None}


def floor_fs(nbytes):
    """A FUSE file system of files whose bytes are copied to and from one
    anonymous mapping, through fusepy as the LFS daemon uses it (big_writes,
    one thread, the copy done like lfs_fast.py's)."""
    import stat

    import fusepy

    mem = mmap.mmap(-1, nbytes)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    sizes = {}

    class Ops(fusepy.Operations):
        def getattr(self, path, fh=None):
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
            if path not in sizes:
                raise fusepy.FuseOSError(errno.ENOENT)
            return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": sizes[path]}

        def create(self, path, mode, fi=None):
            sizes[path] = 0
            return 1

        def open(self, path, flags):
            return 1

        def truncate(self, path, length, fh=None):
            sizes[path] = length

        def unlink(self, path):
            sizes.pop(path, None)

        def getxattr(self, path, name, position=0):
            raise fusepy.FuseOSError(errno.ENODATA)

        def readdir(self, path, fh):
            return [".", ".."] + [p[1:] for p in sizes]

    class Floor(fusepy.FUSE):
        memory = mem  # keeps the mapping `base` points into

        def read(self, path, buf, size, offset, fip):
            n = max(0, min(size, sizes.get(path.decode(), 0) - offset))
            ctypes.memmove(ctypes.addressof(buf.contents), base + offset, n)
            return n

        def write(self, path, buf, size, offset, fip):
            if offset + size > nbytes:
                return -errno.ENOSPC
            ctypes.memmove(base + offset, ctypes.addressof(buf.contents), size)
            p = path.decode()
            sizes[p] = max(sizes.get(p, 0), offset + size)
            return size

    return Ops(), Floor


def mount_floor(mnt, nbytes):
    """Mounts the floor file system at mnt from a child process; its pid."""
    os.makedirs(mnt, exist_ok=True)
    pid = os.fork()
    if pid == 0:
        try:
            import warnings

            warnings.simplefilter("ignore")  # fusepy's utimens deprecation
            ops, cls = floor_fs(nbytes)
            cls(ops, mnt, foreground=True, nothreads=True, big_writes=True)
        finally:
            os._exit(0)
    end = time.time() + 60
    while (" %s fuse " % os.path.abspath(mnt)) not in open("/proc/self/mounts").read():
        if time.time() > end or os.waitpid(pid, os.WNOHANG)[0]:
            os.kill(pid, 15)
            raise SystemExit("the floor file system did not mount at %s" % mnt)
        time.sleep(0.1)
    return pid


def rewrite(mount, path, data, block, res):
    """The file written again in place: no new books, FAM pages already
    written once (the first write of a FAM page costs the host a page fault
    in the FAM file, whichever path writes it)."""
    with Phase(mount, len(data)) as w:
        write_file(path, data, block, create=False)
    res["seq8_rewrite"] = w.result()


def one_run(a, data, seed):
    n = len(data)
    f8 = os.path.join(a.mount, "bench-seq8")
    f1 = os.path.join(a.mount, "bench-seq1")
    fd_ = os.path.join(a.mount, "bench-seqd")
    free0 = free_books(a.mount)
    res = {}
    sequential(a.mount, data, res)
    mapped(a, f8, data, res)
    rewrite(a.mount, f8, data, 8 * MiB, res)
    random4k(a.mount, f1, data, a.random, seed, res)
    with Phase(a.mount, 3 * n) as rm:
        for f in (f8, f1, fd_):
            os.unlink(f)
        end = time.time() + 600
        while free_books(a.mount) < free0:
            if time.time() > end:
                raise SystemExit("rm: books not freed within 600 s")
            time.sleep(0.05)
    res["rm"] = rm.result()

    if a.floor:
        sequential(a.floor, data, res, "floor_")
        random4k(a.floor, os.path.join(a.floor, "bench-seq1"), data, a.random, seed, res, "floor_")
        for f in ("bench-seq8", "bench-seq1", "bench-seqd"):
            os.unlink(os.path.join(a.floor, f))
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mount", default="/lfs")
    p.add_argument("--shadow", required=True, help="the FAM as this node maps it (BAR2 or FAM file)")
    p.add_argument("--offsets", default="lfs_offsets", help="command printing a file's books (JSON)")
    p.add_argument("--mib", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--random", type=int, default=1024, help="4 KiB requests per random phase")
    p.add_argument("--floor", help="mount point for the floor file system (see above)")
    a = p.parse_args()
    data = os.urandom(a.mib * MiB)
    floor = mount_floor(a.floor, len(data)) if a.floor else None
    try:
        runs = [one_run(a, data, seed) for seed in range(a.runs)]
    finally:
        if floor:
            subprocess.call(["umount", a.floor])
            os.waitpid(floor, 0)
    print(json.dumps({"mib": a.mib, "random": a.random, "runs": runs,
                      "features": (stats(a.mount) or {}).get("features")}))


if __name__ == "__main__":
    main()
