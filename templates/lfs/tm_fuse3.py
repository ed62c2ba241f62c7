# fame: tm_fuse's TMFS on libfuse 3 (Debian's python3-pyfuse3), beside
# tm_fuse.py (fusepy, libfuse 2), which stays the default. fame_lfs.py mounts
# with it for `--fuse 3`, or fame.lfs_fuse=3 on the kernel command line
# (fame:lfsFuse 3).
#
# Why: libfuse 2 caps FUSE requests at 128 KiB; libfuse 3 negotiates 1 MiB
# writes, and 1 MiB reads with the mount's read_ahead_kb at 1024 (set here
# after the mount). On a TCG node that makes /lfs's sequential writes about
# 1.5-2x faster, while random 4 KiB requests cost up to twice as much (README,
# "LFS throughput on a node").
#
# How: pyfuse3 speaks FUSE's inode protocol and is asynchronous (trio); the
# daemon's LibrarianFS is a fusepy-style object of path operations, called
# synchronously as fusepy's `nothreads` loop calls it. Fuse3Bridge keeps the
# inode <-> path map (the kernel's lookups give the inodes, unlink and rename
# move names) and the file handle -> inode map, and turns each request into
# the path call fusepy would have made, with fusepy's argument order, so
# LibrarianFS cannot tell the difference. An OSError from it becomes the
# request's errno.
#
# fame_lfs.py hands it LibrarianFS wrapped in lfs_fast.FastOps (the fast
# paths, in this same path form). Not here: fallocate (pyfuse3 3.2 has no
# such operation: the kernel answers EOPNOTSUPP and posix_fallocate(3) writes
# zeros instead).

import errno
import os
import signal
import stat
import threading

import pyfuse3
import trio

__all__ = ["TMFS", "Fuse3Bridge", "request_context", "mount_options"]

# The caller of the request being served (pyfuse3 passes it to some
# operations only); read by tm_fuse.tmfs_get_context.
_context = threading.local()

# libfuse 2's high-level API (fusepy) keeps entries and attributes for 1 s.
TIMEOUT = 1.0
READ_AHEAD_KB = 1024


def request_context():
    """(uid, gid, pid) of the request being served, or None outside one."""
    return getattr(_context, "ids", None)


def mount_options(kwargs, fsname):
    """fusepy-style keyword options (as lfs_fuse.py passes them) -> libfuse 3
    mount options. foreground and nothreads describe fusepy's loop: this one
    always runs in the foreground, in one thread."""
    options = {"fsname=%s" % kwargs.get("fsname", fsname)}
    for key, value in kwargs.items():
        if key in ("foreground", "nothreads", "fsname", "big_writes"):
            continue  # big_writes: libfuse 3 always writes big
        if value is True:
            options.add(key)
        elif value not in (False, None):
            options.add("%s=%s" % (key, value))
    return options


def _ns(seconds):
    return int(round(float(seconds) * 1e9))


class Fuse3Bridge(pyfuse3.Operations):
    """pyfuse3 Operations serving a fusepy-style Operations object."""

    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(self, ops, mountpoint):
        super().__init__()
        self.ops = ops
        self.mountpoint = mountpoint
        self.paths = {pyfuse3.ROOT_INODE: "/"}  # inode -> path
        self.inodes = {"/": pyfuse3.ROOT_INODE}  # path -> inode (live names only)
        self.lookups = {}  # inode -> the kernel's lookup count
        self.next_inode = pyfuse3.ROOT_INODE + 1
        self.handles = {}  # fh -> [inode, opens]

    # ------------------------------------------------------------ plumbing

    def call(self, op, *args, ctx=None):
        """ops(op, *args) as fusepy dispatches it; OSError -> FUSEError."""
        _context.ids = (ctx.uid, ctx.gid, ctx.pid) if ctx is not None else None
        try:
            return self.ops(op, *args)
        except pyfuse3.FUSEError:
            raise
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno or errno.EIO)
        finally:
            _context.ids = None

    def path(self, inode):
        try:
            return self.paths[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ESTALE)

    def child(self, parent, name):
        base = self.path(parent)
        name = os.fsdecode(name)
        return ("/" if base == "/" else base + "/") + name

    def inode_for(self, path):
        inode = self.inodes.get(path)
        if inode is None:
            inode = self.next_inode
            self.next_inode += 1
            self.inodes[path] = inode
            self.paths[inode] = path
        return inode

    def entry(self, path, attrs, counted=True):
        """fusepy's getattr dict -> EntryAttributes (a lookup when counted)."""
        e = pyfuse3.EntryAttributes()
        inode = self.inode_for(path)
        e.st_ino = inode
        e.generation = 0
        e.entry_timeout = TIMEOUT
        e.attr_timeout = TIMEOUT
        e.st_mode = int(attrs.get("st_mode", stat.S_IFREG | 0o644))
        e.st_nlink = int(attrs.get("st_nlink", 1))
        e.st_uid = int(attrs.get("st_uid", 0))
        e.st_gid = int(attrs.get("st_gid", 0))
        e.st_rdev = int(attrs.get("st_rdev", 0))
        e.st_size = int(attrs.get("st_size", 0))
        e.st_blksize = int(attrs.get("st_blksize", 4096))
        e.st_blocks = int(attrs.get("st_blocks", (e.st_size + 511) // 512))
        mtime = attrs.get("st_mtime", 0)
        e.st_mtime_ns = _ns(mtime)
        e.st_ctime_ns = _ns(attrs.get("st_ctime", mtime))
        e.st_atime_ns = _ns(attrs.get("st_atime", mtime))
        if counted:
            self.lookups[inode] = self.lookups.get(inode, 0) + 1
        return e

    def stat(self, path, fh=None, ctx=None):
        return self.call("getattr", path, fh, ctx=ctx)

    def forget_name(self, path):
        """A name that no longer exists: a new file there gets a new inode."""
        inode = self.inodes.pop(path, None)
        if inode is not None and not self.lookups.get(inode):
            self.paths.pop(inode, None)

    # ------------------------------------------------------------ lifecycle

    def init(self):
        self.call("init", "/")
        threading.Thread(target=self._read_ahead, name="fame-read-ahead", daemon=True).start()

    def _read_ahead(self):
        """1 MiB read requests: the kernel's readahead window of this mount's
        backing device info bounds them (128 KiB by default)."""
        try:
            dev = os.stat(self.mountpoint).st_dev
            with open(
                "/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(dev), os.minor(dev)), "w"
            ) as f:
                f.write(str(READ_AHEAD_KB))
        except OSError as e:
            logger = getattr(self.ops, "logger", None)
            if logger is not None:
                logger.warning("read_ahead_kb of %s not set: %s" % (self.mountpoint, e))

    def forget(self, inode_list):
        for inode, n in inode_list:
            left = self.lookups.get(inode, 0) - n
            if left > 0:
                self.lookups[inode] = left
                continue
            self.lookups.pop(inode, None)
            path = self.paths.get(inode)
            if inode != pyfuse3.ROOT_INODE and self.inodes.get(path) != inode:
                self.paths.pop(inode, None)  # unlinked or renamed over: gone

    # ------------------------------------------------------------ names

    async def lookup(self, parent_inode, name, ctx=None):
        path = self.child(parent_inode, name)
        return self.entry(path, self.stat(path, ctx=ctx))

    async def getattr(self, inode, ctx=None):
        path = self.path(inode)
        return self.entry(path, self.stat(path, ctx=ctx), counted=False)

    async def setattr(self, inode, attr, fields, fh, ctx):
        path = self.path(inode)
        if fields.update_size:
            self.call("truncate", path, attr.st_size, fh, ctx=ctx)
        if fields.update_mode:
            self.call("chmod", path, attr.st_mode, ctx=ctx)
        if fields.update_uid or fields.update_gid:
            uid = attr.st_uid if fields.update_uid else -1
            gid = attr.st_gid if fields.update_gid else -1
            self.call("chown", path, uid, gid, ctx=ctx)
        if fields.update_atime or fields.update_mtime:
            now = self.stat(path, ctx=ctx)
            atime = attr.st_atime_ns / 1e9 if fields.update_atime else now.get("st_atime", now.get("st_mtime", 0))
            mtime = attr.st_mtime_ns / 1e9 if fields.update_mtime else now.get("st_mtime", 0)
            self.call("utimens", path, (atime, mtime), ctx=ctx)
        return self.entry(path, self.stat(path, ctx=ctx), counted=False)

    async def unlink(self, parent_inode, name, ctx):
        path = self.child(parent_inode, name)
        self.call("unlink", path, ctx=ctx)
        self.forget_name(path)

    async def rmdir(self, parent_inode, name, ctx):
        path = self.child(parent_inode, name)
        self.call("rmdir", path, ctx=ctx)
        self.forget_name(path)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        if flags:
            raise pyfuse3.FUSEError(errno.EINVAL)  # RENAME_NOREPLACE/EXCHANGE: fusepy has neither
        old = self.child(parent_inode_old, name_old)
        new = self.child(parent_inode_new, name_new)
        self.call("rename", old, new, ctx=ctx)
        self.forget_name(new)
        inode = self.inodes.pop(old, None)
        if inode is not None:
            self.inodes[new] = inode
            self.paths[inode] = new

    async def mkdir(self, parent_inode, name, mode, ctx):
        path = self.child(parent_inode, name)
        self.call("mkdir", path, mode, ctx=ctx)
        return self.entry(path, self.stat(path, ctx=ctx))

    async def mknod(self, parent_inode, name, mode, rdev, ctx):
        path = self.child(parent_inode, name)
        self.call("mknod", path, mode, rdev, ctx=ctx)
        return self.entry(path, self.stat(path, ctx=ctx))

    async def symlink(self, parent_inode, name, target, ctx):
        path = self.child(parent_inode, name)
        self.call("symlink", path, os.fsdecode(target), ctx=ctx)  # fusepy: (link, target)
        return self.entry(path, self.stat(path, ctx=ctx))

    async def readlink(self, inode, ctx):
        return os.fsencode(self.call("readlink", self.path(inode), ctx=ctx))

    async def link(self, inode, new_parent_inode, new_name, ctx):
        path = self.child(new_parent_inode, new_name)
        self.call("link", path, self.path(inode), ctx=ctx)  # fusepy: (new name, existing)
        return self.entry(path, self.stat(path, ctx=ctx))

    # ------------------------------------------------------------ directories

    async def opendir(self, inode, ctx):
        self.path(inode)
        return inode

    async def readdir(self, fh, start_id, token):
        path = self.path(fh)
        names = [n for n in self.call("readdir", path, 0) if n not in (".", "..")]
        for i in range(start_id, len(names)):
            child = ("/" if path == "/" else path + "/") + names[i]
            try:
                attrs = self.stat(child)
            except pyfuse3.FUSEError as e:
                if e.errno == errno.ENOENT:
                    continue  # gone since the listing
                raise
            if not pyfuse3.readdir_reply(token, os.fsencode(names[i]), self.entry(child, attrs), i + 1):
                break

    async def releasedir(self, fh):
        pass

    async def fsyncdir(self, fh, datasync):
        pass

    # ------------------------------------------------------------ files

    def _opened(self, fh, inode):
        h = self.handles.get(fh)
        if h is None:
            self.handles[fh] = [inode, 1]
        else:
            h[1] += 1

    def handle_path(self, fh):
        h = self.handles.get(fh)
        if h is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return self.path(h[0])

    @staticmethod
    def file_info(fh):
        """keep_cache off (pyfuse3's default is on): every open drops this
        node's cached pages of the file, so it reads what other nodes wrote
        before (close-to-open, as libfuse 2 does by default)."""
        return pyfuse3.FileInfo(fh=fh, keep_cache=False, direct_io=False)

    async def open(self, inode, flags, ctx):
        path = self.path(inode)
        fh = self.call("open", path, flags, ctx=ctx)
        self._opened(fh, inode)
        if flags & os.O_TRUNC:
            # libfuse 3 asks the kernel for atomic O_TRUNC (pyfuse3 cannot turn it off): the
            # truncate comes inside the open, where libfuse 2 sent a setattr after it.
            try:
                self.call("truncate", path, 0, fh, ctx=ctx)
            except pyfuse3.FUSEError:
                await self.release(fh)
                raise
        return self.file_info(fh)

    async def create(self, parent_inode, name, mode, flags, ctx):
        path = self.child(parent_inode, name)
        fh = self.call("create", path, mode, ctx=ctx)
        e = self.entry(path, self.stat(path, ctx=ctx))
        self._opened(fh, e.st_ino)
        return self.file_info(fh), e

    async def read(self, fh, off, size):
        return self.call("read", self.handle_path(fh), size, off, fh)

    async def write(self, fh, off, buf):
        return self.call("write", self.handle_path(fh), buf, off, fh)

    async def flush(self, fh):
        self.call("flush", self.handle_path(fh), fh)

    async def fsync(self, fh, datasync):
        self.call("fsync", self.handle_path(fh), datasync, fh)

    async def release(self, fh):
        path = self.handle_path(fh)
        h = self.handles[fh]
        h[1] -= 1
        if h[1] <= 0:
            del self.handles[fh]
        self.call("release", path, fh)

    # ------------------------------------------------------------ the rest

    async def access(self, inode, mode, ctx):
        try:
            self.call("access", self.path(inode), mode, ctx=ctx)
        except pyfuse3.FUSEError:
            return False
        return True

    async def statfs(self, ctx):
        d = self.call("statfs", "/", ctx=ctx)
        s = pyfuse3.StatvfsData()
        for key in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail",
                    "f_files", "f_ffree", "f_favail", "f_namemax"):
            if key in d:
                setattr(s, key, int(d[key]))
        return s

    async def getxattr(self, inode, name, ctx):
        value = self.call("getxattr", self.path(inode), os.fsdecode(name), ctx=ctx)
        if isinstance(value, int):  # LibrarianFS may answer a number
            value = str(value)
        if isinstance(value, str):
            value = value.encode()
        return bytes(value)

    async def setxattr(self, inode, name, value, ctx):
        self.call("setxattr", self.path(inode), os.fsdecode(name), value, 0, ctx=ctx)

    async def listxattr(self, inode, ctx):
        return [os.fsencode(n) for n in self.call("listxattr", self.path(inode), ctx=ctx)]

    async def removexattr(self, inode, name, ctx):
        self.call("removexattr", self.path(inode), os.fsdecode(name), ctx=ctx)


class TMFS:
    """tm_fuse.TMFS's interface (mounts in the constructor, returns at
    unmount) on libfuse 3. SIGTERM, SIGINT and SIGHUP unmount, as libfuse
    2's fuse_main did for fusepy."""

    def __init__(self, operations, mountpoint, **kwargs):
        bridge = Fuse3Bridge(operations, mountpoint)
        pyfuse3.init(bridge, mountpoint, mount_options(kwargs, type(operations).__name__))
        try:
            trio.run(_serve)
        finally:
            pyfuse3.close(unmount=True)
            bridge.call("destroy", "/")


async def _serve():
    async with trio.open_nursery() as nursery:

        async def stop_on_signal():
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
                async for _ in sigs:
                    pyfuse3.terminate()
                    return

        nursery.start_soon(stop_on_signal)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()
