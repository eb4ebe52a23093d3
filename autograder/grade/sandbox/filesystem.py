"""What a child can see of the filesystem, and where it may write.

With a mount namespace (root), the child gets an *allow-list root*: a fresh,
read-only tmpfs that holds only read-only binds of the Python prefixes and
site-packages, /usr, /lib*, /bin, /sbin, a few /etc entries, /sys's CPU list,
five /dev nodes, a fresh /proc, and the run's temp dir -- a tmpfs of
``Limits.scratch_bytes`` (the disk quota) with the student file in it.  The
child pivot_roots into it (chroot where pivot_root fails), so the repo, the
grading output, the submissions and everything else on the machine do not
exist for it.  Without a mount namespace, Landlock is the only allow-list and
the temp dir is a plain folder on the host disk (warned about).
"""
from __future__ import annotations

import os
import site
import stat
import sys
from pathlib import Path

from .limits import SCRATCH_INODES
from .syscalls import (MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC,
                       MS_REMOUNT, mount, pivot_root, umount)

SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "hosts",
               "alternatives")
SYS_DIRS = ("/sys/devices/system/cpu",)
DEV_NODES = ("null", "zero", "full", "random", "urandom")
# Who exists inside: enough for getpwuid() of the child's own uid, nothing of the host's users.
PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
# Flags a bind inherits from its source mount (a remount that drops them is refused in containers).
_KEEP_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096   # + noatime, nodiratime, relatime


def under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _topmost(paths) -> list[str]:
    paths = sorted(set(paths))
    return [p for p in paths if not any(p != q and under(p, q) for q in paths)]


def python_dirs(repo_root: str) -> list[str]:
    """Real paths of the Python prefixes and every sys.path folder outside the repo
    (the repo's own virtual environment counts as a prefix)."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                              sys.base_exec_prefix)}
    dirs = set(prefixes)
    for p in list(site.getsitepackages()) + [p for p in sys.path if p]:
        rp = os.path.realpath(p)
        if os.path.isdir(rp) and (not under(rp, repo_root) or any(under(rp, d) for d in prefixes)):
            dirs.add(rp)
    return sorted(d for d in dirs if os.path.isdir(d) and d != os.path.realpath(repo_root))


def readable_by_nobody(path: str) -> bool:
    p = Path(path)
    for q in [p, *p.parents]:
        try:
            m = q.stat().st_mode
        except OSError:
            return False
        if not m & stat.S_IXOTH:
            return False
    return bool(p.stat().st_mode & stat.S_IROTH)


def _mount_point(new_root: str, path: str, is_dir: bool) -> str:
    """Create ``path`` inside ``new_root`` as an empty dir/file, never following a link
    (a link in there could point back into the host)."""
    here = new_root
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        last = i == len(parts) - 1
        if os.path.islink(here):
            raise OSError(f"{path}: a link is in the way inside the new root")
        if os.path.exists(here):
            continue
        if last and not is_dir:
            os.close(os.open(here, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644))
        else:
            os.mkdir(here, 0o711)             # passable, not listable: /root shows no names
    return here


def _bind_read_only(new_root: str, source: str, target: str | None = None) -> None:
    target = target or source
    where = _mount_point(new_root, target, os.path.isdir(source))
    mount(source, where, None, MS_BIND)
    keep = os.statvfs(source).f_flag & _KEEP_FLAGS
    mount(None, where, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | keep)


def _copy_link(new_root: str, path: str) -> None:
    where = _mount_point(new_root, os.path.dirname(path), True)
    os.symlink(os.readlink(path), os.path.join(where, os.path.basename(path)))


def mount_scratch(where: str, lim: dict, owner: int) -> str:
    """A tmpfs of scratch_bytes at ``where``: every file the run writes lives (and dies) here."""
    mount("tmpfs", where, "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={lim['scratch_bytes']},nr_inodes={SCRATCH_INODES},mode=0700,uid={owner},gid={owner}")
    return f"scratch tmpfs of {lim['scratch_bytes'] >> 20} MiB as the temp dir (disk quota)"


def build_allow_list_root(rundir: str, pydirs: list[str], hidden: list[str], lim: dict, owner: int,
                          fresh_proc: bool, use_pivot_root: bool = True) -> tuple[list[str], list[str]]:
    """Build the allow-list root on top of ``rundir`` and enter it; returns the hidden paths
    it could not cover, and the layer lines.
    Call in a private mount namespace; on error, :func:`undo_root` restores the old view."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    new_root = rundir                         # the host's temp dir serves as the mount point
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=4096")
    bound: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            _copy_link(new_root, d)           # merged /usr: /bin -> usr/bin
        elif os.path.isdir(d):
            _bind_read_only(new_root, d)
            bound.append(d)
    for d in _topmost(pydirs):
        if not any(under(d, b) for b in bound):
            _bind_read_only(new_root, d)
            bound.append(d)
    # Python may reach its prefixes through a link (sys.prefix as given): bind there too.
    for alias in {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p}:
        real = os.path.realpath(alias)
        if alias != real and any(under(real, b) for b in bound) and not any(under(alias, b) for b in bound):
            try:
                _bind_read_only(new_root, real, alias)
            except OSError:
                pass
    etc = _mount_point(new_root, "/etc", True)
    for name in ETC_ENTRIES:
        path = os.path.join("/etc", name)
        if os.path.islink(path):
            _copy_link(new_root, path)
        elif os.path.exists(path):
            _bind_read_only(new_root, path)
    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        with open(os.path.join(etc, name), "w") as f:
            f.write(text)
    for d in SYS_DIRS:
        if os.path.isdir(d):
            _bind_read_only(new_root, d)
    dev = _mount_point(new_root, "/dev", True)
    for name in DEV_NODES:
        if os.path.exists(f"/dev/{name}"):
            mount(f"/dev/{name}", _mount_point(new_root, f"/dev/{name}", False), None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, name))
    mount("proc", _mount_point(new_root, "/proc", True), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # Whatever must stay hidden but lies inside an allowed folder gets covered.
    covered, exposed = [], []
    for h in sorted({os.path.realpath(h) for h in hidden}):
        if not any(under(h, b) for b in bound) or not os.path.lexists(h):
            continue                          # not in the view anyway
        if any(under(d, h) for d in pydirs):
            exposed.append(h)                 # covering it would hide Python itself
        else:
            where = os.path.join(new_root, h.lstrip("/"))
            if os.path.isdir(h):
                mount("tmpfs", where, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,nr_inodes=1,mode=000")
            else:
                mount("/dev/null", where, None, MS_BIND)
            covered.append(h)
    scratch = mount_scratch(_mount_point(new_root, rundir, True), lim, owner)
    mount(None, new_root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(new_root)
    how = "pivot_root"
    try:
        if not use_pivot_root:
            raise OSError("pivot_root not used")
        pivot_root(".", ".")                  # the old root now sits on top of the new one ...
    except OSError:
        os.chroot(".")                        # no way out once capabilities are dropped
        how = "chroot"
    else:
        umount(".", MNT_DETACH)               # ... and is detached: the host tree is gone
    os.chdir("/")
    kept = ", ".join(["python prefixes"] + [b for b in bound if b not in pydirs] + list(SYS_DIRS))
    view = (f"allow-list root ({how}): read-only {kept}, /etc/{{{','.join(ETC_ENTRIES)}}}, "
            f"/dev/{{{','.join(DEV_NODES)}}}; nothing else")
    if covered:
        view += f" (covered: {', '.join(covered)})"
    proc = "fresh /proc (own pid namespace only)" if fresh_proc else "/proc of the host pid namespace"
    return exposed, [view, proc, scratch]


def undo_root(rundir: str) -> None:
    """Drop a half-built root (and everything mounted inside it)."""
    try:
        umount(rundir, MNT_DETACH)
    except OSError:
        pass
