# fame: fusepy's FUSE class mounted through libfuse 3's high-level (path)
# API, by ctypes, with fusepy's own request methods. Part of fame's node
# adapter: fame_lfs.py mounts /lfs with it for `--fuse 3` (fame:lfsFuse 3).
#
# Why not pyfuse3: it copies every write into a Python bytes (a second copy
# of each byte in the daemon) and serves requests on trio, which costs a
# small request up to twice what fusepy's direct callback does. Here the
# daemon is fusepy's, request for request (tm_fuse.TMFS and lfs_fast.FastTMFS
# subclass it unchanged, `copy` included), and only the operation table and
# the mount are libfuse 3's:
#  * 1 MiB requests: libfuse 3 negotiates FUSE_MAX_PAGES (libfuse 2 stops at
#    128 KiB); reads reach 1 MiB once the mount's read_ahead_kb is 1024, set
#    here after the mount.
#  * writes spliced: libfuse 3 splices a write request's pages out of
#    /dev/fuse into a pipe (SPLICE_READ, on by default with write_buf) and
#    write_buf hands them on as a "pull" that reads them from the pipe into
#    the caller's buffer (fuse_buf_copy), so FastTMFS.write_buf reads them
#    straight into the FAM mapping: one copy in the daemon instead of two.
#    (Reads cannot do the same: the kernel pins a reply's pages, which the
#    BAR2 mapping refuses, so they go through libfuse's buffer.)
#
# The layouts below are libfuse 3.14's (Debian 12, libfuse3.so.3) and 3.17's
# (Debian 13, libfuse3.so.4), checked against both <fuse.h>: struct
# fuse_operations up to lseek, fuse_file_info's fh at offset 16 (3.17 adds
# fields after poll_events; libfuse allocates it), struct fuse_buf as { size,
# flags, mem, fd, pos } and 3.17's mem_size after them (3.14 reads none of it).
# fuse_main_real is the FUSE_3.0 symbol both export (3.17's headers call
# fuse_main_real_versioned; the old entry treats the caller as a 3.0 program).

import ctypes
import errno
import os
import threading

import fusepy

__all__ = ["FUSE3", "request_context", "READ_AHEAD_KB"]

def _load():
    for name in ("libfuse3.so.4", "libfuse3.so.3"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise ImportError("no libfuse 3 (libfuse3.so.4 or .3): install Debian's fuse3")


_lib = _load()

READ_AHEAD_KB = 1024
FUSE_BUF_IS_FD = 2

c_off_t = ctypes.c_int64
c_mode_t = ctypes.c_uint32
c_dev_t = ctypes.c_uint64
c_uid_t = ctypes.c_uint32
c_gid_t = ctypes.c_uint32


class fuse_file_info(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_int),
        ("writepage", ctypes.c_uint, 1),
        ("direct_io", ctypes.c_uint, 1),
        ("keep_cache", ctypes.c_uint, 1),
        ("bits", ctypes.c_uint, 29),
        ("padding2", ctypes.c_uint),
        ("fh", ctypes.c_uint64),
        ("lock_owner", ctypes.c_uint64),
        ("poll_events", ctypes.c_uint32),
    ]


class fuse_buf(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("flags", ctypes.c_int),
        ("mem", ctypes.c_void_p),
        ("fd", ctypes.c_int),
        ("pos", c_off_t),
        ("mem_size", ctypes.c_size_t),
    ]


class fuse_bufvec(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_size_t),
        ("idx", ctypes.c_size_t),
        ("off", ctypes.c_size_t),
        ("buf", fuse_buf * 1),
    ]


_lib.fuse_buf_copy.restype = ctypes.c_ssize_t
_lib.fuse_buf_copy.argtypes = [ctypes.POINTER(fuse_bufvec), ctypes.POINTER(fuse_bufvec), ctypes.c_int]
_lib.fuse_buf_size.restype = ctypes.c_size_t
_lib.fuse_buf_size.argtypes = [ctypes.POINTER(fuse_bufvec)]
_lib.fuse_get_context.restype = ctypes.POINTER(fusepy.fuse_context)
_lib.fuse_exit.argtypes = [ctypes.c_void_p]

_fip = ctypes.POINTER(fuse_file_info)
_stat = ctypes.POINTER(fusepy.c_stat)
_bytes = ctypes.POINTER(ctypes.c_byte)
_fill_dir_t = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, _stat, c_off_t, ctypes.c_int
)

# struct fuse_operations (FUSE_USE_VERSION 31): (name, return, argument types).
_OPS = [
    ("getattr", ctypes.c_int, [ctypes.c_char_p, _stat, _fip]),
    ("readlink", ctypes.c_int, [ctypes.c_char_p, _bytes, ctypes.c_size_t]),
    ("mknod", ctypes.c_int, [ctypes.c_char_p, c_mode_t, c_dev_t]),
    ("mkdir", ctypes.c_int, [ctypes.c_char_p, c_mode_t]),
    ("unlink", ctypes.c_int, [ctypes.c_char_p]),
    ("rmdir", ctypes.c_int, [ctypes.c_char_p]),
    ("symlink", ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p]),
    ("rename", ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]),
    ("link", ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p]),
    ("chmod", ctypes.c_int, [ctypes.c_char_p, c_mode_t, _fip]),
    ("chown", ctypes.c_int, [ctypes.c_char_p, c_uid_t, c_gid_t, _fip]),
    ("truncate", ctypes.c_int, [ctypes.c_char_p, c_off_t, _fip]),
    ("open", ctypes.c_int, [ctypes.c_char_p, _fip]),
    ("read", ctypes.c_int, [ctypes.c_char_p, _bytes, ctypes.c_size_t, c_off_t, _fip]),
    ("write", ctypes.c_int, [ctypes.c_char_p, _bytes, ctypes.c_size_t, c_off_t, _fip]),
    ("statfs", ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(fusepy.c_statvfs)]),
    ("flush", ctypes.c_int, [ctypes.c_char_p, _fip]),
    ("release", ctypes.c_int, [ctypes.c_char_p, _fip]),
    ("fsync", ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, _fip]),
    ("setxattr", ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, _bytes, ctypes.c_size_t, ctypes.c_int]),
    ("getxattr", ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, _bytes, ctypes.c_size_t]),
    ("listxattr", ctypes.c_int, [ctypes.c_char_p, _bytes, ctypes.c_size_t]),
    ("removexattr", ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p]),
    ("opendir", ctypes.c_int, [ctypes.c_char_p, _fip]),
    ("readdir", ctypes.c_int, [ctypes.c_char_p, ctypes.c_void_p, _fill_dir_t, c_off_t, _fip, ctypes.c_int]),
    ("releasedir", ctypes.c_int, [ctypes.c_char_p, _fip]),
    ("fsyncdir", ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, _fip]),
    ("init", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_void_p]),
    ("destroy", None, [ctypes.c_void_p]),
    ("access", ctypes.c_int, [ctypes.c_char_p, ctypes.c_int]),
    ("create", ctypes.c_int, [ctypes.c_char_p, c_mode_t, _fip]),
    ("lock", None, None),
    ("utimens", ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(fusepy.c_utimbuf), _fip]),
    ("bmap", ctypes.c_int, [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint64)]),
    ("ioctl", ctypes.c_int, [ctypes.c_char_p, ctypes.c_uint, ctypes.c_void_p, _fip, ctypes.c_uint, ctypes.c_void_p]),
    ("poll", None, None),
    ("write_buf", ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(fuse_bufvec), c_off_t, _fip]),
    ("read_buf", None, None),
    ("flock", None, None),
    ("fallocate", ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, c_off_t, c_off_t, _fip]),
    ("copy_file_range", None, None),
    ("lseek", None, None),
]


class fuse_operations(ctypes.Structure):
    _fields_ = [
        (name, ctypes.CFUNCTYPE(ret, *args) if args is not None else ctypes.c_void_p)
        for name, ret, args in _OPS
    ]


# Every callback runs with its thread marked as in a request (FUSE3._wrap);
# libfuse 3's context is only meaningful there.
_in_request = threading.local()


def request_context():
    """(uid, gid, pid) of the request being served, or None outside one."""
    if getattr(_in_request, "depth", 0) <= 0:
        return None
    ctxp = _lib.fuse_get_context()
    if not ctxp:
        return None
    ctx = ctxp.contents
    return ctx.uid, ctx.gid, ctx.pid


def mount_args(kwargs, fsname, mountpoint):
    """fusepy-style keyword options -> libfuse 3's fuse_main arguments."""
    args = ["fuse"]
    for key, flag in (("foreground", "-f"), ("debug", "-d"), ("nothreads", "-s")):
        if kwargs.get(key):
            args.append(flag)
    options = ["fsname=%s" % kwargs.get("fsname", fsname)]
    for key, value in kwargs.items():
        if key in ("foreground", "debug", "nothreads", "fsname", "big_writes"):
            continue  # big_writes: libfuse 3 refuses it (it always writes big)
        if value is True:
            options.append(key)
        elif value not in (False, None):
            options.append("%s=%s" % (key, value))
    return args + ["-o", ",".join(options), mountpoint]


# Operations whose libfuse 3 signature (or, for open, behaviour: atomic
# O_TRUNC) differs from libfuse 2's: the method that adapts it to fusepy's.
_ADAPTED = {
    "getattr": "_getattr3",
    "chmod": "_chmod3",
    "chown": "_chown3",
    "truncate": "_truncate3",
    "rename": "_rename3",
    "open": "_open3",
    "readdir": "_readdir3",
    "init": "_init3",
    "utimens": "_utimens3",
    "write_buf": "_write_buf3",
}


class FUSE3(fusepy.FUSE):
    """fusepy.FUSE on libfuse 3: the same constructor (mounts, returns at
    unmount) and the same request methods, called with libfuse 3's
    arguments adapted where its signatures differ from libfuse 2's."""

    def __init__(self, operations, mountpoint, raw_fi=False, encoding="utf-8", **kwargs):
        self.operations = operations
        self.raw_fi = raw_fi
        self.encoding = encoding
        self.use_ns = getattr(operations, "use_ns", False)
        self.mountpoint = mountpoint
        self._fatal = None
        args = [a.encode(encoding) for a in mount_args(kwargs, type(operations).__name__, mountpoint)]
        argv = (ctypes.c_char_p * len(args))(*args)
        # What the operations object has, as fusepy registers them; the rest
        # answers ENOSYS. Writes come in as write_buf (spliced), never write.
        ops = fuse_operations()
        self._callbacks = []  # keeps the C callbacks alive while mounted
        for name, ret, types in _OPS:
            has = "write" if name == "write_buf" else name
            if types is None or name == "write" or getattr(operations, has, None) is None:
                continue
            method = getattr(self, _ADAPTED.get(name, name))
            cb = ctypes.CFUNCTYPE(ret, *types)(self._wrap(method, name))
            self._callbacks.append(cb)
            setattr(ops, name, cb)
        err = _lib.fuse_main_real(len(args), argv, ctypes.byref(ops), ctypes.sizeof(ops), None)
        del self.operations
        if self._fatal is not None:
            raise self._fatal
        if err:
            raise RuntimeError(err)

    def _wrap(self, method, name):
        """fusepy's error mapping: OSError -> -errno, anything else -> -EINVAL
        (logged); a BaseException stops the loop and is raised at unmount."""

        def call(*args):
            _in_request.depth = getattr(_in_request, "depth", 0) + 1
            try:
                r = method(*args)
                return None if name == "destroy" else (0 if name != "init" and r is None else r)
            except OSError as e:
                return -(e.errno if e.errno and e.errno > 0 else errno.EINVAL)
            except Exception:
                fusepy.log.error("Uncaught exception from FUSE operation %s", name, exc_info=True)
                return -errno.EINVAL
            except BaseException as e:
                self._fatal = e
                ctxp = _lib.fuse_get_context()
                if ctxp:
                    _lib.fuse_exit(ctxp.contents.fuse)
                return -errno.EFAULT
            finally:
                _in_request.depth -= 1

        return call

    # ------------------------------------------- libfuse 3's signatures -> fusepy's methods

    def _getattr3(self, path, buf, fip):
        return self.fgetattr(path, buf, fip) if fip else self.getattr(path, buf)

    def _chmod3(self, path, mode, fip):
        return self.chmod(path, mode)

    def _chown3(self, path, uid, gid, fip):
        return self.chown(path, uid, gid)

    def _truncate3(self, path, length, fip):
        return self.ftruncate(path, length, fip) if fip else self.truncate(path, length)

    def _rename3(self, old, new, flags):
        if flags:
            return -errno.EINVAL  # RENAME_NOREPLACE/EXCHANGE: fusepy's operations have neither
        return self.rename(old, new)

    def _open3(self, path, fip):
        self.open(path, fip)
        if fip.contents.flags & os.O_TRUNC:
            # libfuse 3 asks the kernel for atomic O_TRUNC: the truncate comes
            # inside the open, where libfuse 2 sent a setattr after it.
            try:
                self.ftruncate(path, 0, fip)
            except BaseException:
                self.release(path, fip)
                raise
        return 0

    def _utimens3(self, path, buf, fip):
        return self.utimens(path, buf)

    def _readdir3(self, path, buf, filler, offset, fip, flags):
        # fusepy's readdir, with libfuse 3's filler (its last argument: no fill flags).
        return self.readdir(path, buf, lambda b, name, st, off: filler(b, name, st, off, 0), offset, fip)

    def _init3(self, conn, cfg):
        threading.Thread(target=self._read_ahead, name="fame-read-ahead", daemon=True).start()
        self.init(conn)
        return None

    def _read_ahead(self):
        """1 MiB read requests: the kernel's readahead window of this mount's
        backing device info bounds them (128 KiB by default). Set once the
        mount exists (init runs before fuse_main's mount returns)."""
        for _ in range(100):
            try:
                dev = os.stat(self.mountpoint).st_dev
                if os.major(dev) == 0:  # FUSE's anonymous device: mounted
                    with open("/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(dev), os.minor(dev)), "w") as f:
                        f.write(str(READ_AHEAD_KB))
                    return
            except OSError:
                pass
            threading.Event().wait(0.1)

    def _write_buf3(self, path, bufv, offset, fip):
        src = bufv

        def pull(addr, n):
            """Copies the request's next n bytes to addr; the bytes copied."""
            dst = fuse_bufvec(count=1, idx=0, off=0)
            dst.buf[0].size = n
            dst.buf[0].flags = 0
            dst.buf[0].mem = addr
            dst.buf[0].fd = -1
            got = _lib.fuse_buf_copy(ctypes.byref(dst), src, 0)
            if got < 0:
                raise OSError(-got, os.strerror(-got))
            return got

        b = bufv.contents
        pull.spliced = bool(b.buf[0].flags & FUSE_BUF_IS_FD) if b.count == 1 else False
        return self.write_buf(path, pull, _lib.fuse_buf_size(bufv), offset, fip)

    def write_buf(self, path, pull, size, offset, fip):
        """A write request as `pull` (the bytes, not yet read); fusepy's write
        with them in a buffer. lfs_fast.FastTMFS reads them into the FAM."""
        buf = (ctypes.c_byte * size)()
        got = pull(ctypes.addressof(buf), size)
        return self.write(path, ctypes.cast(buf, _bytes), got, offset, fip)
