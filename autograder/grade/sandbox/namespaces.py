"""New PID, mount, network and IPC namespaces for one run, and the sweep used without them."""
from __future__ import annotations

import os
import signal
import time

from .syscalls import CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, unshare

_FLAGS = (("mount", CLONE_NEWNS), ("net", CLONE_NEWNET), ("ipc", CLONE_NEWIPC), ("pid", CLONE_NEWPID))


def enter_new_namespaces(skip=()) -> set:
    """Unshare every namespace this process may (root only); returns the names that held.
    The PID namespace applies to the next child, which becomes its pid 1."""
    return {name for name, flag in _FLAGS if name not in skip and unshare(flag)}


def kill_descendants() -> None:
    """Without a PID namespace: SIGKILL every (re-parented) descendant and reap."""
    for _ in range(50):
        kids = set()
        for task in os.listdir("/proc/self/task"):
            try:
                kids.update(int(x) for x in open(f"/proc/self/task/{task}/children").read().split())
            except OSError:
                pass
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            if not kids:
                return
        time.sleep(0.01)
