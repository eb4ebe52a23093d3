"""Jobs used by tests/test_sandbox.py: they run inside the sandbox child."""
from __future__ import annotations

import importlib


def call_main(workdir, request: bytes) -> bytes:
    """Import the student's file from the temp dir and return main(request) as bytes."""
    mod = importlib.import_module("resnet50_skeleton")
    out = mod.main(request)
    return out if isinstance(out, bytes) else str(out).encode()


def returns_str(workdir, request: bytes):
    return "not bytes"
