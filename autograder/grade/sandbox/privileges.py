"""Drop from root to nobody with no capabilities left, and forbid regaining any."""
from __future__ import annotations

import ctypes
import os
import signal
import struct

from .syscalls import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS,
                       PR_SET_PDEATHSIG, check, libc, prctl)

NOBODY = 65534


def _status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def _empty_bounding_set() -> None:
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for c in range(last + 1):
        prctl(PR_CAPBSET_DROP, c)
    try:
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass                                  # kernels before 4.3 have no ambient set


def drop_capabilities_keep_root() -> None:
    """uid 0 without any capability: for when nobody could not even load Python."""
    _empty_bounding_set()
    header = struct.pack("<Ii", 0x20080522, 0)          # _LINUX_CAPABILITY_VERSION_3, this thread
    data = ctypes.create_string_buffer(24)              # effective, permitted, inheritable: all empty
    check(libc.capset(ctypes.create_string_buffer(header, 8), data), "capset")
    st = _status()
    if any(int(st[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")):
        raise RuntimeError("capability drop failed")


def drop_to_nobody(uid: int = NOBODY) -> None:
    """To nobody, or to another unprivileged uid (its gid the same number)."""
    _empty_bounding_set()
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)   # setuid clears it
    st = _status()
    if os.getuid() != uid or any(int(st[k], 16) for k in ("CapEff", "CapPrm", "CapBnd")):
        raise RuntimeError("privilege drop failed")


def no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)
