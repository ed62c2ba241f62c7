#!/usr/bin/python3 -P
# fame: launcher for tm-librarian's LFS daemon (lfs_fuse.py) on stock Debian.
#
#   fame_lfs.py [--tm_librarian DIR] [--node N] [--fast LIST] [--fuse 2|3] [lfs_fuse.py options...]
#
# Runs the unmodified lfs_fuse.py from the tm-librarian source tree DIR
# (default /opt/fame/tm-librarian, or $FAME_TM_LIBRARIAN) after putting fame's
# own adapter in place. Nothing of tm-librarian is copied here; its modules are
# imported from DIR/src at run time and patched in memory:
#  * `tm_fuse` is fame's stand-in on Debian's python3-fusepy (tm_fuse.py next
#    to this file), imported before tm-librarian's own src/tm_fuse.py.
#  * lfs_shadow.shadow_file is replaced by FamShadowFile: the FAM is one file
#    (a plain file, or a node's IVSHMEM BAR2 /sys/bus/pci/devices/<bdf>/resource2)
#    accessed through one shared mapping. Upstream's class has an init-order
#    bug since 2017 ('Namespace' object has no attribute 'aperture_base'),
#    probes the file's directory for writability (sysfs refuses) and uses
#    read/write on the file (EIO on a memory BAR: only mmap works). It also
#    creates a missing file; this one never creates, truncates or resizes it.
#  * `tm_fuse.TMFS`, which lfs_fuse.py mounts its LibrarianFS with, becomes
#    lfs_fast.FastTMFS: reads and writes served from the open file's cached
#    books, file sizes sent at close, fast zeroing of freed books (see
#    lfs_fast.py; --fast all (default), none, or a comma list of its features).
#  * --fuse 3: FastTMFS mounts through libfuse 3 instead (fusepy3.py: fusepy's
#    requests on libfuse 3's operation table, by ctypes), with 1 MiB requests
#    and writes spliced from /dev/fuse into the FAM mapping; every fast path
#    applies. --fuse 2: fusepy (libfuse 2).
#
# Defaults filled in when the option is absent:
#  * --physloc from --node N, else from fame.node=N on the kernel command line
#    (node N is rack 1, enclosure (N-1)//10+1, node (N-1)%10+1: the order in
#    which book_register numbers a node_count INI; at most 80 nodes).
#  * --fuse from fame.lfs_fuse=2|3 on the kernel command line (fame:lfsFuse),
#    else 2.
#  * --shadow_file: the BAR2 of the first IVSHMEM device (1af4:1110).

import ctypes
import errno
import glob
import mmap
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_NODES = 80
IVSHMEM_IDS = ("0x1af4", "0x1110")


def physloc_for_node(node):
    """fame node number (1-based) -> lfs_fuse --physloc 'rack:enc:node'."""
    if isinstance(node, bool) or not isinstance(node, int):
        raise ValueError("node number must be an integer, got %r" % (node,))
    if not 1 <= node <= MAX_NODES:
        raise ValueError(
            "node %d has no Librarian location: LFS supports nodes 1..%d"
            % (node, MAX_NODES)
        )
    return "1:%d:%d" % ((node - 1) // 10 + 1, (node - 1) % 10 + 1)


def node_from_cmdline(cmdline):
    """The N of the last fame.node=N on a kernel command line, or None."""
    node = None
    for word in cmdline.split():
        if word.startswith("fame.node="):
            value = word[len("fame.node="):]
            if not value.isdigit():
                raise ValueError("fame.node=%s is not a node number" % value)
            node = int(value)
    return node


def fuse_from_cmdline(cmdline):
    """The value of the last fame.lfs_fuse= on a kernel command line, or "2"."""
    fuse = "2"
    for word in cmdline.split():
        if word.startswith("fame.lfs_fuse="):
            fuse = word[len("fame.lfs_fuse="):]
    return fuse


def find_bar2(sysfs="/sys/bus/pci/devices"):
    """resource2 of the first IVSHMEM device (sorted by PCI address)."""
    for dev in sorted(glob.glob(os.path.join(sysfs, "*"))):
        try:
            with open(os.path.join(dev, "vendor")) as f:
                vendor = f.read().strip()
            with open(os.path.join(dev, "device")) as f:
                device = f.read().strip()
        except OSError:
            continue
        if (vendor, device) == IVSHMEM_IDS:
            return os.path.join(dev, "resource2")
    raise SystemExit("no IVSHMEM device (1af4:1110) found in %s" % sysfs)


def _split_own_args(argv):
    """Take --tm_librarian, --node, --fast and --fuse out of argv; the rest is lfs_fuse's."""
    own = {"tm_librarian": os.environ.get("FAME_TM_LIBRARIAN", "/opt/fame/tm-librarian"),
           "node": None, "fast": None, "fuse": None}
    rest = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        for key in ("tm_librarian", "node", "fast", "fuse"):
            flag = "--" + key
            if arg == flag:
                if i + 1 >= len(argv):
                    raise SystemExit("%s needs a value" % flag)
                own[key] = argv[i + 1]
                i += 2
                break
            if arg.startswith(flag + "="):
                own[key] = arg[len(flag) + 1:]
                i += 1
                break
        else:
            rest.append(arg)
            i += 1
    return own, rest


def _has_option(argv, name):
    return any(a == name or a.startswith(name + "=") for a in argv)


def fuse_and_fast(fuse, fast):
    """--fuse and --fast -> (fuse, fast), refusing what does not go together."""
    if fuse not in ("2", "3"):
        raise SystemExit("--fuse %r: expected 2 (libfuse 2) or 3 (libfuse 3)" % fuse)
    return fuse, "all" if fast is None else fast


def install_adapter(src, fast="all", fuse="2"):
    """Make `import tm_fuse` fame's stand-in and tm-librarian's src/ importable,
    then patch lfs_shadow and tm_fuse.TMFS. Returns the lfs_shadow module."""
    fuse, fast = fuse_and_fast(fuse, fast)
    if not os.path.isfile(os.path.join(src, "lfs_fuse.py")):
        raise SystemExit("no lfs_fuse.py in %s (tm-librarian source)" % src)
    # Our directory first, so `tm_fuse` is ours; never the script's own dir
    # semantics of plain `python3` (hence -P above).
    sys.path[:] = [HERE, src] + [p for p in sys.path if p not in (HERE, src, "")]
    import tm_fuse  # noqa: F401  (ours: checked below)

    if os.path.dirname(os.path.abspath(tm_fuse.__file__)) != HERE:
        raise SystemExit("tm_fuse was imported from %s, not fame's adapter" % tm_fuse.__file__)
    import lfs_shadow

    lfs_shadow.shadow_file = make_shadow_class(lfs_shadow)
    import lfs_fast

    try:
        features = lfs_fast.parse_features(fast)
    except ValueError as e:
        raise SystemExit(str(e))
    if fuse == "3":
        import fusepy3

        class FastTMFS3(lfs_fast.FastTMFS, fusepy3.FUSE3):
            """lfs_fast.FastTMFS (tm_fuse.TMFS, fusepy's requests) mounted through libfuse 3."""

        FastTMFS3.features = features
        tm_fuse.context_hook = fusepy3.request_context
        tm_fuse.TMFS = FastTMFS3  # before lfs_fuse.py's `from tm_fuse import TMFS`
        return lfs_shadow
    lfs_fast.FastTMFS.features = features
    tm_fuse.TMFS = lfs_fast.FastTMFS  # before lfs_fuse.py's `from tm_fuse import TMFS`
    return lfs_shadow


def make_shadow_class(lfs_shadow):
    from tm_fuse import TmfsOSError

    base = lfs_shadow.shadow_support

    class FamShadowFile(base):
        """FAM in one file, accessed through one MAP_SHARED mapping."""

        def __init__(self, args, lfs_globals):
            path = args.shadow_file
            try:
                st = os.stat(path)
            except OSError as e:
                raise RuntimeError("shadow file %s: %s" % (path, e.strerror))
            if not (st.st_mode & 0o170000) == 0o100000:
                raise RuntimeError("shadow file %s is not a regular file" % path)
            need = lfs_globals["nvm_bytes_total"]
            if st.st_size < need:
                raise RuntimeError(
                    "shadow file %s has %d bytes, the Librarian needs %d"
                    % (path, st.st_size, need)
                )
            # What upstream sets after (instead of before) the base __init__.
            args.aperture_base = 0
            args.aperture_size = st.st_size
            args.addr_mode = base._MODE_FALLBACK
            args.BIImode = lfs_globals["BIImode"]
            base.__init__(self, args, lfs_globals)
            self.shadow_path = path
            fd = os.open(path, os.O_RDWR)
            try:
                self._fam = mmap.mmap(
                    fd, need, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
                )
            finally:
                os.close(fd)
            # For memmove/memset on the mapping (lfs_fast.py); it stays mapped for the daemon's life.
            self.fam_address = ctypes.addressof(ctypes.c_char.from_buffer(self._fam))
            self.fam_size = need

        def book_offset(self, book):
            """FAM offset of a book (an entry of the Librarian's list_shelf_books)."""
            return self._igstart[book["intlv_group"] & 0xFFFF] + book["book_num"] * self.book_size

        def zero_books(self, bos):
            """Zeroes the books, one memset each."""
            for b in bos:
                o = self.book_offset(b)
                if o + self.book_size > self.fam_size:
                    raise TmfsOSError(errno.EIO)
                ctypes.memset(self.fam_address + o, 0, self.book_size)

        def _chunks(self, shelf, offset, length):
            """(fam_offset, n) pieces of [offset, offset+length) of a shelf,
            split at book boundaries; stops at the shelf's last book."""
            while length > 0:
                n = min(self.book_size - offset % self.book_size, length)
                fam = self.shadow_offset(shelf, offset)
                if fam < 0:
                    return
                yield fam, n
                offset += n
                length -= n

        def read(self, shelf, length, offset, fd):
            return b"".join(self._fam[o:o + n] for o, n in self._chunks(shelf, offset, length))

        def write(self, shelf, buf, offset, fd):
            view = memoryview(buf)
            done = 0
            for o, n in self._chunks(shelf, offset, len(buf)):
                self._fam[o:o + n] = view[done:done + n]
                done += n
            if done < len(buf):
                raise TmfsOSError(errno.ENOSPC)
            return done

    return FamShadowFile


def main(argv):
    own, rest = _split_own_args(argv)
    cmdline = None
    if own["fuse"] is None or (own["node"] is None and not _has_option(rest, "--physloc")):
        with open("/proc/cmdline") as f:
            cmdline = f.read()
    if own["fuse"] is None:
        own["fuse"] = fuse_from_cmdline(cmdline)
    if not _has_option(rest, "--physloc"):
        node = own["node"]
        if node is None:
            node = node_from_cmdline(cmdline)
            if node is None:
                raise SystemExit("no --physloc, --node or fame.node=N on the kernel command line")
        try:
            rest += ["--physloc", physloc_for_node(int(node))]
        except ValueError as e:
            raise SystemExit(str(e))
    if not _has_option(rest, "--shadow_file") and not _has_option(rest, "--shadow_dir"):
        rest += ["--shadow_file", find_bar2()]
    src = os.path.join(own["tm_librarian"], "src")
    install_adapter(src, own["fast"], own["fuse"])
    sys.argv = [os.path.join(src, "lfs_fuse.py")] + rest
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
