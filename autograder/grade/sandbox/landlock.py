"""Landlock: an unprivileged allow-list of paths, plus no TCP and scoped signals."""
from __future__ import annotations

import ctypes
import os
import stat
import struct

from .syscalls import check, libc

_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446     # the same on every architecture
_FS_EXEC, _FS_WRITE, _FS_READ, _FS_READDIR = 1, 2, 4, 8
_FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 14, 1 << 15
_FILE_RIGHTS = _FS_EXEC | _FS_WRITE | _FS_READ | _FS_TRUNCATE | _FS_IOCTL_DEV
READ = _FS_EXEC | _FS_READ | _FS_READDIR
READ_WRITE_FILE = _FS_READ | _FS_WRITE | _FS_TRUNCATE | _FS_IOCTL_DEV


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where Landlock is off or unknown."""
    try:
        return max(0, libc.syscall(ctypes.c_long(_LL_CREATE), None, ctypes.c_size_t(0),
                                   ctypes.c_uint32(1)))
    except Exception:
        return 0


def restrict(read_paths, write_paths, rw_files) -> int:
    """Allow only these paths from now on (this process and its children); returns the ABI."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock unavailable")
    handled = (1 << 13) - 1
    if abi >= 2:
        handled |= 1 << 13
    if abi >= 3:
        handled |= _FS_TRUNCATE
    if abi >= 5:
        handled |= _FS_IOCTL_DEV
    attr = struct.pack("<Q", handled)
    if abi >= 4:
        attr += struct.pack("<Q", 3)          # deny TCP bind + connect
    if abi >= 6:
        attr += struct.pack("<Q", 3)          # scope abstract unix sockets + signals
    buf = ctypes.create_string_buffer(attr, len(attr))
    rfd = libc.syscall(ctypes.c_long(_LL_CREATE), buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if rfd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    try:
        def add(path, access):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                return                        # absent on this machine: nothing to allow
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    access &= _FILE_RIGHTS
                rule = ctypes.create_string_buffer(struct.pack("<Qi", access & handled, fd), 12)
                check(libc.syscall(ctypes.c_long(_LL_ADD), ctypes.c_int(rfd), ctypes.c_int(1), rule,
                                   ctypes.c_uint32(0)), f"landlock_add_rule {path}")
            finally:
                os.close(fd)
        for p in read_paths:
            add(p, READ)
        for p in rw_files:
            add(p, READ_WRITE_FILE)
        for p in write_paths:
            add(p, handled)
        check(libc.syscall(ctypes.c_long(_LL_RESTRICT), ctypes.c_int(rfd), ctypes.c_uint32(0)),
              "landlock_restrict_self")
    finally:
        os.close(rfd)
    return abi
