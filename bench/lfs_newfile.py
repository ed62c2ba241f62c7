"""Where a new /lfs file's sequential write spends its time (issue 18).

Run by bench/lfsNewFile.ts inside the lab's namespaces, on one LFS mount:
per round, a new file written in 8 MiB blocks, the same file rewritten in
place, then removed until its books are free. With --prefault FAM, every
page of the FAM file is written (zeros) once first, so a new file's books
land on pages already resident and dirty: what is left of the new-file cost
is then the Librarian's part (lfs_fast.py's grow) and bookkeeping. Prints one
JSON object: per round and phase, MiB/s, the daemon's counters (ms in each
request type, grow included in write) and the Librarian round trips.
"""

import argparse
import json
import mmap
import os
import time

MiB = 1 << 20
STATS = "user.fame.stats"
HEARTBEAT = ("update_node_soc_status", "update_node_mc_status")


def stats(mount):
    return json.loads(os.getxattr(mount, STATS))


def delta(a, b):
    ops = {}
    for k, v in b["ops"].items():
        c = a["ops"].get(k, {"count": 0, "seconds": 0.0})
        if v["count"] != c["count"]:
            ops[k] = {"count": v["count"] - c["count"], "ms": (v["seconds"] - c["seconds"]) * 1000}
    rt = {}
    for k, v in b["librarian"].items():
        n = v - a["librarian"].get(k, 0)
        if n and k not in HEARTBEAT:
            rt[k] = n
    return ops, rt


def write(path, data, create):
    fd = os.open(path, os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if create else 0), 0o644)
    try:
        view = memoryview(data)
        for i in range(0, len(data), 8 * MiB):
            os.write(fd, view[i:i + 8 * MiB])
    finally:
        os.close(fd)


def remove(mount, path):
    free0 = os.statvfs(mount).f_bfree
    size = os.stat(path).st_size
    os.unlink(path)
    books = -(-size // os.statvfs(mount).f_bsize)
    end = time.time() + 120
    while os.statvfs(mount).f_bfree < free0 + books:
        if time.time() > end:
            raise SystemExit("rm: books not freed within 120 s")
        time.sleep(0.05)


def prefault(fam):
    fd = os.open(fam, os.O_RDWR)
    try:
        n = os.fstat(fd).st_size
        m = mmap.mmap(fd, n)
    finally:
        os.close(fd)
    t0 = time.perf_counter()
    zeros = bytes(64 * MiB)
    for i in range(0, n, len(zeros)):
        m[i:i + len(zeros)] = zeros[:n - i]
    m.close()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mount", required=True)
    p.add_argument("--mib", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--prefault", metavar="FAM", help="write every page of this FAM file first")
    a = p.parse_args()
    data = os.urandom(a.mib * MiB)
    out = {"mib": a.mib, "prefault_seconds": prefault(a.prefault) if a.prefault else None, "rounds": []}
    for r in range(a.rounds):
        path = os.path.join(a.mount, "newfile-%d" % r)
        rnd = {}
        for name, f in (("new", lambda: write(path, data, True)),
                        ("rewrite", lambda: write(path, data, False)),
                        ("rm", lambda: remove(a.mount, path))):
            before = stats(a.mount)
            t0 = time.perf_counter()
            f()
            s = time.perf_counter() - t0
            ops, rt = delta(before, stats(a.mount))
            rnd[name] = {"seconds": s, "mib_per_s": a.mib / s, "ops": ops, "round_trips": rt}
        out["rounds"].append(rnd)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
