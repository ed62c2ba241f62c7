# fame: fast paths for tm-librarian's LibrarianFS (lfs_fuse.py), part of
# fame's node adapter. Upstream's code is not changed: fame_lfs.py makes
# `tm_fuse.TMFS` this module's FastTMFS before lfs_fuse.py imports it, so the
# daemon's LibrarianFS object is handed to FastTMFS, which answers some
# requests itself and passes every other one to LibrarianFS as before.
#
# Where upstream's time goes, per request (a Librarian round trip crosses the
# node network to torms):
#  * read and write ask the Librarian for the file (get_shelf), though they
#    then use the book list cached at open;
#  * a write past the end of the file resizes it at the Librarian first (five
#    round trips), so a file written from empty pays that for every request;
#  * the kernel asks for security.capability before every write(2), which
#    upstream answers (always empty) after a get_shelf;
#  * rm zeroes the file's books by running dd through the mount, 64 KiB at a
#    time, with fixed sleeps around it (1-2 minutes for 64 MiB under TCG).
#
# Features (`fame_lfs.py --fast LIST`, default all; `none` is upstream's
# behaviour, with the counters below):
#  handle  read and write served from the open handle's cached file (upstream's
#          shadow cache: the book list from open, refreshed by this node's
#          truncate and fallocate, dropped at the last release and at unlink):
#          no round trip per request.
#  copy    with handle: the bytes go straight between FUSE's request buffer
#          and the FAM mapping (one memmove, no Python bytes objects).
#  size    with handle: a write past the end that stays inside the file's
#          books only moves the size this node keeps; the Librarian gets it
#          before any other request of this node reaches upstream's code
#          (getattr, open, truncate, rename, ...) and at flush (every
#          close), fsync and release.
#  grow    with handle: a write that needs a new book resizes the file at the
#          Librarian and fetches its book list (2 round trips; upstream's
#          write and truncate take 6), updating the handle's cache.
#  xattr   security.* attributes (always empty in LFS) answered without asking
#          the Librarian whether the file exists.
#  zero    a freed file's books (rm, or a truncate that drops books) zeroed
#          through the FAM mapping, one memset per book, then the file
#          truncated and unlinked through the mount as upstream's dd workflow
#          does, without its sleeps.
#
# Coherence (unchanged from upstream): close-to-open across nodes. open asks
# the Librarian for the file and its books and FUSE drops the node's page
# cache then. While a file is held open on two nodes, each keeps the book
# list and size it had at open (plus its own truncates): another node's
# truncate, extension or re-creation is seen at the next open, and a size
# grown by writes reaches the Librarian at close. One difference: a write
# that needs books of a file another node grew meanwhile takes that node's
# size and books, where upstream's resize shrank the file back. (The kernel
# also keeps a file's attributes for 1 s, FUSE's default attr_timeout.)
#
# Counters: getxattr user.fame.stats on the mount's root answers JSON: the
# Librarian round trips by command, and per FUSE request type (plus grow,
# push and zero, parts of other requests) the count, the time spent in the
# daemon, the bytes and the requests by size.

import ctypes
import errno
import json
import os
import threading
import time

import tm_fuse

FEATURES = ("handle", "copy", "size", "grow", "xattr", "zero")
STATS_XATTR = b"user.fame.stats"
_IG_MASK = 0xFFFF  # frdnode.BooksIGInterpretation.VALUE_MASK


def parse_features(spec):
    """'all', 'none' or a comma list of FEATURES -> frozenset."""
    if spec == "all":
        return frozenset(FEATURES)
    if spec == "none":
        return frozenset()
    names = [s for s in spec.split(",") if s]
    bad = [n for n in names if n not in FEATURES]
    if bad or not names:
        raise ValueError(
            "--fast %r: expected all, none or a comma list of %s" % (spec, ", ".join(FEATURES))
        )
    chosen = frozenset(names)
    for f in ("copy", "size", "grow"):
        if f in chosen and "handle" not in chosen:
            raise ValueError("--fast %s needs handle" % f)
    return chosen


class Stats:
    """Counters, updated from the FUSE loop, the heartbeat and zeroing threads."""

    def __init__(self, features):
        self.features = sorted(features)
        self._lock = threading.Lock()
        self.librarian = {}
        self.ops = {}  # request -> [count, seconds in the daemon, bytes, {request size: count}]

    def round_trip(self, command):
        with self._lock:
            self.librarian[command] = self.librarian.get(command, 0) + 1

    def op(self, name, t0, nbytes=0):
        dt = time.perf_counter() - t0
        with self._lock:
            o = self.ops.get(name)
            if o is None:
                o = self.ops[name] = [0, 0.0, 0, {}]
            o[0] += 1
            o[1] += dt
            o[2] += nbytes
            sizes = o[3]
            sizes[nbytes] = sizes.get(nbytes, 0) + 1

    def snapshot(self):
        with self._lock:
            return {
                "features": self.features,
                "librarian": dict(self.librarian),
                "ops": {
                    k: {"count": v[0], "seconds": v[1], "bytes": v[2], "sizes": dict(v[3])}
                    for k, v in self.ops.items()
                },
            }


def _request_bytes(op, args):
    if op == "read":
        return args[1]
    if op == "write":
        return len(args[1])
    return 0


class _Requests:
    """What fusepy calls for every request FastTMFS does not answer itself:
    counts it and, unless it is a read, first gives the Librarian the sizes
    this node's writes reached, so upstream's code sees the file as it is."""

    def __init__(self, fast):
        self.__dict__["_fast"] = fast

    def __call__(self, op, *args):
        fast = self._fast
        if fast.pending and op != "read":
            try:
                fast.push()
            except OSError:
                if op in ("flush", "fsync"):  # close(2)/fsync(2) report it
                    raise
        t0 = time.perf_counter()
        try:
            return fast.lfs(op, *args)
        finally:
            fast.stats.op(op, t0, _request_bytes(op, args))

    def __getattr__(self, name):
        return getattr(self._fast.lfs, name)


def count_round_trips(lfs, stats):
    """Wraps lfs.librarian (every Librarian request of the daemon, its
    heartbeat and zeroing threads included): counts each request by
    command, and sends it with its own copy of the request context.

    Upstream's commands all hold the protocol's one context dict, whose seq
    the next command (from any thread) bumps; librarian() reads seq, waits
    for the socket, then sends the dict: another thread's command made in
    between was answered as "Response not for me" (EILSEQ). That broke the
    zeroing threads' requests under TCG; upstream's own heartbeat thread
    raced the same way."""
    librarian = lfs.librarian

    def counted(cmdict, errorOK=False):
        stats.round_trip(cmdict.get("command"))
        cmdict = dict(cmdict)
        cmdict["context"] = dict(cmdict["context"])
        return librarian(cmdict, errorOK)

    lfs.librarian = counted  # an instance attribute wins over LibrarianFS's method


class FastState:
    """FastTMFS's state, whichever libfuse it is mounted through: the
    counters, the sizes not yet at the Librarian, growing a file and freeing
    its books."""

    def _setup(self, lfs, features):
        self.lfs = lfs
        self.shadow = lfs.shadow
        self.book_size = lfs.shadow.book_size
        self.stats = Stats(features)
        # shelf id -> [path, size]: sizes this node's writes reached that the Librarian has not been told.
        self.pending = {}
        self._handle = "handle" in features
        self._copy = "copy" in features
        self._size = "size" in features
        self._grow = "grow" in features
        self._xattr = "xattr" in features
        count_round_trips(lfs, self.stats)
        if "zero" in features:
            lfs._zero = self._zero

    def stats_xattr(self):
        return json.dumps(self.stats.snapshot()).encode()

    # ---------------------------------------------------------------- sizes

    def _extend(self, path, shelf, end):
        """Readies the cached file for a write that ends at `end`, past its
        size: True when the fast path may write it, False for upstream's
        write (which resizes the file itself)."""
        if end > len(shelf.bos) * self.book_size:  # needs new books
            if not self._grow:
                self.pending.pop(shelf.id, None)  # upstream's resize sets a larger size
                return False
            self._grow_to(path, shelf, end)
            return True
        if not self._size:
            return False
        shelf.size_bytes = end  # the cache upstream's write checks, shared by the file's handles
        self.pending[shelf.id] = [path, end]
        return True

    def _resize(self, path, sid, size):
        lfs = self.lfs
        lfs.librarian(
            lfs.lcp(
                "resize_shelf",
                path=path,
                size_bytes=size,
                id=sid,
                zero_enabled=self.shadow.zero_on_unlink,
            )
        )

    def _grow_to(self, path, shelf, end):
        """Upstream's truncate for a larger size, in 2 round trips: resize,
        then the new book list, into the cached file all its handles share."""
        t0 = time.perf_counter()
        self.pending.pop(shelf.id, None)
        lfs = self.lfs
        try:
            self._resize(path, shelf.id, end)  # growing never makes a zeroing file
        except OSError as e:
            if e.errno != errno.EMFILE:
                raise
            # A shrink, refused while the file is open (this daemon's requests are not
            # its opener's): another node grew it meanwhile. Take its size and books.
            end = max(end, lfs.librarian(lfs.lcp("get_shelf", path=path))["size_bytes"])
        bos = lfs.librarian(lfs.lcp("list_shelf_books", path=path))
        shelf.bos = bos
        shelf.book_count = len(bos)
        shelf.size_bytes = end
        self.stats.op("grow", t0)  # (part of the write that needed it)

    def push(self):
        """Gives the Librarian the sizes this node's writes reached (what
        upstream's resize on every such write did); raises the first
        failure after trying them all."""
        t0 = time.perf_counter()
        failed = None
        for sid in list(self.pending):
            path, size = self.pending.pop(sid)
            try:
                self._resize(path, sid, size)
            except Exception as e:
                if isinstance(e, OSError) and e.errno == errno.EMFILE:
                    continue  # a shrink, refused: another node grew the file beyond this size
                self.lfs.logger.error("size %d of %s not recorded: %s" % (size, path, e))
                if failed is None:
                    failed = e
        self.stats.op("push", t0)  # (part of the request that needed it)
        if failed is not None:
            if isinstance(failed, OSError) and failed.errno:
                raise failed
            raise tm_fuse.TmfsOSError(errno.EIO)

    # ---------------------------------------------------------------- freeing

    def _zero(self, shelf):
        """LibrarianFS._zero without dd: zero the books through the mapping,
        then truncate (the Librarian frees the books) and unlink the zeroing
        file through the mount, as upstream's workflow does. A failed step
        is tried again (twice): otherwise the books stay allocated."""
        lfs = self.lfs
        t0 = time.perf_counter()
        full = os.path.join(lfs.mountpoint, shelf.name)  # zeroing files live at the root
        for attempt in range(3):
            try:
                assert shelf.name.startswith(lfs._ZERO_PREFIX), shelf.name
                with lfs.zerosema:
                    if not lfs.fakezero:
                        bos = lfs.librarian(lfs.lcp("list_shelf_books", path="/" + shelf.name))
                        self.shadow.zero_books(bos)
                os.truncate(full, 0)
                os.unlink(full)
                break
            except Exception as e:
                lfs.logger.error("zeroing %s (attempt %d): %s" % (shelf.name, attempt + 1, e))
                self.stats.op("zero_failed", t0)
                time.sleep(1)
        self.stats.op("zero", t0, shelf.size_bytes)


class FastTMFS(FastState, tm_fuse.TMFS):
    """tm_fuse.TMFS for a LibrarianFS, with the fast paths above."""

    features = frozenset(FEATURES)  # set by fame_lfs.py from --fast

    def __init__(self, operations, mountpoint, **kwargs):
        self._setup(operations, self.features)
        kwargs.setdefault("fsname", type(operations).__name__)
        super().__init__(_Requests(self), mountpoint, **kwargs)  # returns at unmount

    # ---------------------------------------------------------------- FAM access

    def _span(self, bos, offset, size, addr, into_fam, pull=None):
        """Copies [offset, offset+size) of a file with books `bos` between the
        buffer at `addr` and the FAM mapping; stops after the last book. With
        `pull` (libfuse 3's write_buf), into the FAM from the request itself:
        pull(address, n) copies its next n bytes there."""
        shadow = self.shadow
        bs = self.book_size
        igstart = shadow._igstart
        base = shadow.fam_address
        limit = shadow.fam_size
        nbooks = len(bos)
        done = 0
        while done < size:
            pos = offset + done
            i = pos // bs
            if i >= nbooks:
                break
            inbook = pos - i * bs
            n = min(bs - inbook, size - done)
            b = bos[i]
            fam = igstart[b["intlv_group"] & _IG_MASK] + b["book_num"] * bs + inbook
            if fam + n > limit:
                raise tm_fuse.TmfsOSError(errno.EIO)
            if pull is not None:
                if pull(base + fam, n) != n:
                    raise tm_fuse.TmfsOSError(errno.EIO)
            elif into_fam:
                ctypes.memmove(base + fam, addr + done, n)
            else:
                ctypes.memmove(addr + done, base + fam, n)
            done += n
        return done

    # ---------------------------------------------------------------- requests

    def read(self, path, buf, size, offset, fip):
        if not self._handle:
            return super().read(path, buf, size, offset, fip)
        t0 = time.perf_counter()
        fh = fip.contents.fh
        shelf = self.shadow[(None, fh)]
        if shelf is None:  # not opened through this daemon: upstream's answer
            return super().read(path, buf, size, offset, fip)
        if self._copy:
            n = self._span(shelf.bos, offset, size, ctypes.addressof(buf.contents), False)
        else:
            data = self.shadow.read(shelf, size, offset, fh)
            n = len(data)
            ctypes.memmove(buf, data, n)
        self.stats.op("read", t0, size)
        return n

    def write(self, path, buf, size, offset, fip):
        if not self._handle:
            return super().write(path, buf, size, offset, fip)
        t0 = time.perf_counter()
        fh = fip.contents.fh
        shelf = self.shadow[(None, fh)]
        if shelf is None:
            return super().write(path, buf, size, offset, fip)
        end = offset + size
        if end > shelf.size_bytes and not self._extend(path.decode(self.encoding), shelf, end):
            # Upstream's path, whose truncate refreshes the cached book list.
            return super().write(path, buf, size, offset, fip)
        if self._copy:
            n = self._span(shelf.bos, offset, size, ctypes.addressof(buf.contents), True)
        else:
            n = self.shadow.write(shelf, ctypes.string_at(buf, size), offset, fh)
        if n < size:
            raise tm_fuse.TmfsOSError(errno.ENOSPC)
        self.stats.op("write", t0, size)
        return n

    def write_buf(self, path, pull, size, offset, fip):
        """A write on libfuse 3 (fusepy3.FUSE3) whose bytes are still in the
        request: with copy, read from it straight into the FAM mapping (one
        copy in the daemon); otherwise into a buffer for write's paths."""
        shelf = self.shadow[(None, fip.contents.fh)] if self._handle and self._copy else None
        end = offset + size
        if shelf is None or (
            end > shelf.size_bytes and not self._extend(path.decode(self.encoding), shelf, end)
        ):
            buf = (ctypes.c_byte * size)()
            n = pull(ctypes.addressof(buf), size)
            if shelf is None:
                return self.write(path, buf, n, offset, fip)
            return super().write(path, buf, n, offset, fip)  # upstream's, as write falls back
        t0 = time.perf_counter()
        n = self._span(shelf.bos, offset, size, None, True, pull)
        if n < size:
            raise tm_fuse.TmfsOSError(errno.ENOSPC)
        self.stats.op("write", t0, size)
        if getattr(pull, "spliced", False):  # the bytes came from a pipe, not libfuse's buffer
            self.stats.op("write_spliced", t0, size)
        return n

    def getxattr(self, path, name, value, size, *args):
        if name == STATS_XATTR and path == b"/":
            data = self.stats_xattr()
            if not value:
                return len(data)
            if len(data) > size:
                return -errno.ERANGE
            ctypes.memmove(value, data, len(data))
            return len(data)
        if self._xattr and name.startswith(b"security."):
            t0 = time.perf_counter()
            self.stats.op("getxattr", t0)
            return 0  # upstream's answer for security.*: an empty value
        return super().getxattr(path, name, value, size, *args)
