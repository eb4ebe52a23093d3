"""Resource limits of one run: what ``Limits`` holds and how the child applies it."""
from __future__ import annotations

import dataclasses
import resource


@dataclasses.dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0
    memory_bytes: int = 4 << 30       # address space on top of what the zygote already maps
    output_bytes: int = 8192          # stdout+stderr kept
    payload_bytes: int = 64 << 20     # largest result
    nproc: int = 256
    fsize_bytes: int = 64 << 20       # largest single file
    scratch_bytes: int = 64 << 20     # size of the tmpfs temp dir: all files together

    def __post_init__(self):
        # A zero would mean "no limit" to tmpfs and to some rlimits: refuse it here.
        bad = [f.name for f in dataclasses.fields(self) if not getattr(self, f.name) > 0]
        if bad:
            raise ValueError(f"sandbox limits must be positive: {', '.join(bad)}")


SCRATCH_INODES = 4096                 # files + folders in the scratch tmpfs


def apply_process_limits(lim: dict) -> None:
    """No core dumps, one file at most fsize_bytes, at most nproc processes."""
    for res, val in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, lim["fsize_bytes"]),
                     (resource.RLIMIT_NPROC, lim["nproc"])):
        resource.setrlimit(res, (val, val))


def apply_memory_limit(lim: dict) -> str:
    """Cap the address space at what is mapped now plus memory_bytes; returns the layer line."""
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    cap = vm + lim["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return f"RLIMIT_AS = VmSize {vm >> 20} MiB + {lim['memory_bytes'] >> 20} MiB"
