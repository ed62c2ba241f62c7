#!/usr/bin/python3 -P
# fame: where an LFS file's bytes live in FAM, and live access to them.
#
#   lfs_offsets FILE                      JSON: size, book size, FAM offset of every book
#   lfs_offsets FILE OFFSET               the FAM offset of byte OFFSET of FILE (decimal)
#   lfs_offsets FILE read OFFSET LEN      LEN bytes at OFFSET, read from the FAM mapping
#   lfs_offsets FILE write OFFSET TEXT    TEXT stored at OFFSET, through the FAM mapping
#
# Options (before FILE): --hostname torms --port 9093 --mountpoint /lfs
#   --tm_librarian /opt/fame/tm-librarian --shadow_file <BAR2 or FAM file>
#   --node N (default: fame.node=N on the kernel command line, else 1)
#
# Reading and writing through /lfs goes through FUSE and the page cache:
# another node sees the bytes after it reopens the file (close-to-open). The
# read/write commands here (and hello_fabric at the offsets printed) map the
# IVSHMEM BAR2 itself: every node sees a store at once, as The Machine's mmap
# of an LFS file did. The offsets come from the Librarian (list_shelf_books)
# and follow the layout lfs_fuse.py uses for its shadow file: interleave
# groups in order, each holding its books; offset = start of the book's
# group + book number x book size + offset within the book.

import json
import mmap
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fame_lfs  # noqa: E402


def _options(argv):
    opts = {
        "hostname": "torms",
        "port": "9093",
        "mountpoint": "/lfs",
        "tm_librarian": os.environ.get("FAME_TM_LIBRARIAN", "/opt/fame/tm-librarian"),
        "shadow_file": None,
        "node": None,
    }
    rest = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and a[2:].split("=")[0] in opts:
            key = a[2:].split("=")[0]
            if "=" in a:
                opts[key] = a.split("=", 1)[1]
                i += 1
            else:
                if i + 1 >= len(argv):
                    raise SystemExit("%s needs a value" % a)
                opts[key] = argv[i + 1]
                i += 2
        else:
            rest.append(a)
            i += 1
    return opts, rest


class Librarian:
    """A minimal client of the Librarian's protocol (tm-librarian's own modules)."""

    def __init__(self, src, host, port, node):
        sys.path.insert(1, src)
        import tm_fuse  # noqa: F401  fame's stand-in, needed by tm-librarian modules
        from cmdproto import LibrarianCommandProtocol
        from socket_handling import Client

        # The Librarian wants a registered node in every request's context.
        physloc = fame_lfs.physloc_for_node(node).replace(":", "_")
        self.lcp = LibrarianCommandProtocol({"umask": 0, "node_id": node, "physloc": physloc})
        self.client = Client(selectable=False)
        if not self.client.connect(host=host, port=int(port), retry=False):
            raise SystemExit("cannot reach the Librarian at %s:%s" % (host, port))

    def __call__(self, command, **kwargs):
        cmd = self.lcp(command, **kwargs)
        ctx = cmd["context"]
        ctx["uid"], ctx["gid"], ctx["pid"] = os.getuid(), os.getgid(), os.getpid()
        ctx["tid"] = 0
        self.client.send_all(cmd)
        rsp = None
        while rsp is None:
            rsp = self.client.recv_all()
        if "errmsg" in rsp:
            raise SystemExit("librarian: %s: %s" % (command, rsp["errmsg"]))
        return rsp["value"]


def layout(lib, lfs_path):
    """{size, book_size, books: [{seq, intlv_group, book_num, fam_offset}]}."""
    stats = lib("get_fs_stats")
    book = stats["book_size_bytes"]
    per_ig = {int(k): v for k, v in stats["books_per_IG"].items()}
    igstart = {}
    offset = 0
    for ig in sorted(per_ig):
        igstart[ig] = offset
        offset += per_ig[ig][0] * book
    shelf = lib("get_shelf", path=lfs_path)
    bos = lib("list_shelf_books", path=lfs_path)
    books = []
    for seq, b in enumerate(bos):
        ig = b["intlv_group"] & 0xFFFF
        books.append(
            {
                "seq": seq,
                "intlv_group": ig,
                "book_num": b["book_num"],
                "fam_offset": igstart[ig] + b["book_num"] * book,
            }
        )
    return {"path": lfs_path, "size": shelf["size_bytes"], "book_size": book, "books": books}


def fam_offset(info, file_offset):
    if not 0 <= file_offset < len(info["books"]) * info["book_size"]:
        raise SystemExit("offset %d is outside the file's books" % file_offset)
    b = info["books"][file_offset // info["book_size"]]
    return b["fam_offset"] + file_offset % info["book_size"]


def _map(shadow, start, length):
    """A shared mapping of [start, start+length) of the BAR2 (or FAM) file."""
    page = mmap.PAGESIZE
    base = start - start % page
    fd = os.open(shadow, os.O_RDWR)
    try:
        m = mmap.mmap(fd, start - base + length, mmap.MAP_SHARED,
                      mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
    finally:
        os.close(fd)
    return m, start - base


def access(info, shadow, file_offset, length, data=None):
    """Reads (data None) or writes through the mapping, book by book."""
    out = []
    done = 0
    while done < length:
        pos = file_offset + done
        n = min(info["book_size"] - pos % info["book_size"], length - done)
        m, at = _map(shadow, fam_offset(info, pos), n)
        try:
            if data is None:
                out.append(m[at:at + n])
            else:
                m[at:at + n] = data[done:done + n]
        finally:
            m.close()
        done += n
    return b"".join(out)


def main(argv):
    opts, rest = _options(argv)
    if not rest:
        raise SystemExit(__doc__ if __doc__ else "usage: lfs_offsets FILE [OFFSET | read OFFSET LEN | write OFFSET TEXT]")
    target = os.path.abspath(rest[0])
    mnt = os.path.abspath(opts["mountpoint"])
    if not (target + "/").startswith(mnt + "/"):
        raise SystemExit("%s is not under the LFS mount point %s" % (target, mnt))
    lfs_path = "/" + os.path.relpath(target, mnt)
    node = opts["node"]
    if node is None:
        with open("/proc/cmdline") as f:
            node = fame_lfs.node_from_cmdline(f.read()) or 1
    lib = Librarian(os.path.join(opts["tm_librarian"], "src"), opts["hostname"], opts["port"], int(node))
    info = layout(lib, lfs_path)
    if len(rest) == 1:
        print(json.dumps(info))
        return
    if len(rest) == 2:
        print(fam_offset(info, int(rest[1], 0)))
        return
    shadow = opts["shadow_file"] or fame_lfs.find_bar2()
    cmd, off = rest[1], int(rest[2], 0)
    if cmd == "read" and len(rest) == 4:
        sys.stdout.buffer.write(access(info, shadow, off, int(rest[3], 0)))
    elif cmd == "write" and len(rest) == 4:
        data = rest[3].encode()
        access(info, shadow, off, len(data), data)
    else:
        raise SystemExit("usage: lfs_offsets FILE [OFFSET | read OFFSET LEN | write OFFSET TEXT]")


if __name__ == "__main__":
    main(sys.argv[1:])
