# fame: a stand-in for tm-librarian's `tm_fuse` module on stock FUSE.
#
# tm-librarian's lfs_fuse.py imports TMFS, TmfsOSError, Operations,
# LoggingMixIn and tmfs_get_context from `tm_fuse`, its own fork of fusepy
# bound to HPE's libtmfs (a libfuse fork that needs the L4FAME kernel's tmfs
# module; its repository is gone). This module provides the same names on
# top of Debian's python3-fusepy (module `fusepy`, libfuse 2, /dev/fuse), so
# the unmodified daemon runs on a stock Debian kernel. It is fame's own code;
# it must shadow tm-librarian's src/tm_fuse.py on sys.path (fame_lfs.py, the
# launcher, arranges that).
#
# Differences from plain fusepy, each needed by lfs_fuse.py:
#  * getattr ignores the file handle: LibrarianFS.getattr answers ENOENT when
#    `fh` is set, and stock FUSE sets it (fgetattr) after create/ftruncate.
#  * fallocate is added to the operation table (fusepy 3.0.1 stops at ioctl).
#  * big_writes is on by default (128 KiB writes instead of 4 KiB: a 20 MiB
#    write took 17.3 s without it, 0.7 s with it).
#  * tmfs_get_context works outside a FUSE request (lfs_fuse.py asks for the
#    context before mounting and from its heartbeat thread, where libfuse 2
#    answers garbage): it then answers with this process's uid, gid and pid.

import ctypes
import errno
import os
import threading
import warnings

import fusepy

__all__ = [
    "TMFS",
    "TmfsOSError",
    "Operations",
    "LoggingMixIn",
    "tmfs_get_context",
    "fuse_operations_with_fallocate",
]

TmfsOSError = fusepy.FuseOSError
Operations = fusepy.Operations
LoggingMixIn = fusepy.LoggingMixIn

_libfuse = fusepy._libfuse

# libfuse 2's fuse_get_context() is only meaningful inside a request: outside
# one it reads an unrelated thread-specific slot (not NULL, garbage). Calls
# into the operations object mark their thread as being in a request.
_request = threading.local()


# Set by fame_lfs.py --fuse 3: fusepy3.request_context, the caller of the
# request libfuse 3 is serving (None outside one).
context_hook = None


def tmfs_get_context():
    """(uid, gid, pid) of the process behind the current FUSE request, or of
    this process when there is no request (main thread before the mount,
    helper threads such as lfs_fuse.py's heartbeat)."""
    if context_hook is not None:
        ids = context_hook()
        return ids if ids is not None else (os.getuid(), os.getgid(), os.getpid())
    if getattr(_request, "depth", 0) > 0:
        ctxp = fusepy._libfuse.fuse_get_context()
        if ctxp:
            ctx = ctxp.contents
            return ctx.uid, ctx.gid, ctx.pid
    return os.getuid(), os.getgid(), os.getpid()


class _InRequest:
    """Wraps an Operations object: every call through it (the way fusepy
    dispatches a request) runs with the thread marked as in a request."""

    def __init__(self, ops):
        self.__dict__["_ops"] = ops

    def __call__(self, op, *args):
        _request.depth = getattr(_request, "depth", 0) + 1
        try:
            return self._ops(op, *args)
        finally:
            _request.depth -= 1

    def __getattr__(self, name):
        return getattr(self._ops, name)


# libfuse 2.9's struct fuse_operations continues after ioctl with poll,
# write_buf, read_buf, flock and fallocate (fuse.h, FUSE_USE_VERSION 26+).
# fusepy's table ends at ioctl; this one is fusepy's plus the rest, so
# libfuse sees fallocate at the right offset (it is told the struct's size).
fuse_operations_with_fallocate = type(
    "fuse_operations",
    (ctypes.Structure,),
    {
        "_fields_": list(fusepy.fuse_operations._fields_)
        + [
            ("poll", ctypes.c_voidp),
            ("write_buf", ctypes.c_voidp),
            ("read_buf", ctypes.c_voidp),
            ("flock", ctypes.c_voidp),
            (
                "fallocate",
                ctypes.CFUNCTYPE(
                    ctypes.c_int,
                    ctypes.c_char_p,
                    ctypes.c_int,
                    fusepy.c_off_t,
                    fusepy.c_off_t,
                    ctypes.POINTER(fusepy.fuse_file_info),
                ),
            ),
        ]
    },
)

# FUSE.__init__ builds its table from the module-level name.
fusepy.fuse_operations = fuse_operations_with_fallocate


class TMFS(fusepy.FUSE):
    """fusepy's FUSE with the adaptations lfs_fuse.py needs (see above)."""

    def __init__(self, operations, mountpoint, **kwargs):
        kwargs.setdefault("big_writes", True)
        kwargs.setdefault("fsname", operations.__class__.__name__)
        with warnings.catch_warnings():
            # lfs_fuse.py's utimens takes float seconds (fusepy < 4 style).
            warnings.simplefilter("ignore", DeprecationWarning)
            super().__init__(_InRequest(operations), mountpoint, **kwargs)

    def fgetattr(self, path, buf, fip):
        ctypes.memset(buf, 0, ctypes.sizeof(fusepy.c_stat))
        attrs = self.operations("getattr", self._decode_optional_path(path), None)
        fusepy.set_st_attrs(buf.contents, attrs, use_ns=self.use_ns)
        return 0

    def getattr(self, path, buf):
        return self.fgetattr(path, buf, None)

    def fallocate(self, path, mode, offset, length, fip):
        fh = fip.contents.fh if fip else None
        if self.raw_fi and fip:
            fh = fip.contents
        return self.operations(
            "fallocate", self._decode_optional_path(path), mode, offset, length, fh
        )

    def getxattr(self, path, name, value, size, *args):
        # LibrarianFS.getxattr may answer an int; FUSE wants bytes.
        ret = self.operations(
            "getxattr", path.decode(self.encoding), name.decode(self.encoding), *args
        )
        if isinstance(ret, int):
            ret = str(ret).encode()
        retsize = len(ret)
        if not value:
            return retsize
        if retsize > size:
            return -errno.ERANGE
        ctypes.memmove(value, ctypes.create_string_buffer(ret, retsize), retsize)
        return retsize
