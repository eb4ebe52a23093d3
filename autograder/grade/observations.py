"""Strict reading of the JSON report a sandboxed probe sends back.

The report comes from a process that ran untrusted code, so nothing in it is
taken on faith: every value is read through these accessors, which check its
type and bounds and raise ``MalformedReport`` otherwise. Arrays are decoded
with numpy from base64 float32 with an exact byte count -- never unpickled.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re

import numpy as np

# The reference solution's report is about 850 KB holding about 2,200 JSON values
# (measured with the sandbox on solutions/resnet50_skeleton.py); these bounds allow
# roughly 10x and 45x that. A bigger report only comes from tampering, and parsing
# one (say ``[{}] * 15_000_000``) would cost the trusted process gigabytes.
MAX_REPORT_BYTES = 8 * 1024 * 1024
MAX_REPORT_VALUES = 100_000
MAX_ELEMENTS = 4 * 1024 * 1024   # floats in one decoded array
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')   # unrolled: linear and fast
MAX_DEPTH = 32   # the probe's reports nest about 6 deep; deeper only comes from tampering


class MalformedReport(ValueError):
    pass


def parse_report(payload: bytes) -> dict:
    if len(payload) > MAX_REPORT_BYTES:
        raise MalformedReport(f"report of {len(payload):,} bytes is larger than the "
                              f"{MAX_REPORT_BYTES:,} allowed")
    # Count the values before json builds them: outside strings, every value but
    # the first in a container follows a comma, and every container opens once.
    structure = _JSON_STRING.sub(b'""', payload)
    values = structure.count(b",") + structure.count(b"[") + structure.count(b"{")
    if values > MAX_REPORT_VALUES:
        raise MalformedReport(f"report holds about {values:,} values, more than the "
                              f"{MAX_REPORT_VALUES:,} allowed")
    try:
        report = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedReport(f"report is not JSON: {exc}") from None
    except RecursionError:
        raise MalformedReport(f"report nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:   # e.g. an integer of more digits than Python converts
        raise MalformedReport(f"report holds a value that cannot be read: {exc}") from None
    if not isinstance(report, dict):
        raise MalformedReport("report is not a JSON object")
    _check_depth(report)
    return report


def _check_depth(report) -> None:
    """Refuse deep nesting before any recursive code (repr, comparisons) meets it.
    Iterative, so the check itself cannot run out of stack."""
    stack = [(report, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedReport(f"report nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def field(obj, key, kind, default=...):
    """``obj[key]`` checked to be of ``kind`` (a type or tuple of types)."""
    if not isinstance(obj, dict):
        raise MalformedReport(f"expected an object holding {key!r}, got {type(obj).__name__}")
    if key not in obj:
        if default is ...:
            raise MalformedReport(f"missing field {key!r}")
        return default
    value = obj[key]
    if kind is int and isinstance(value, bool):
        raise MalformedReport(f"field {key!r} should be an integer")
    if not isinstance(value, kind):
        raise MalformedReport(f"field {key!r} has type {type(value).__name__}")
    return value


def text(obj, key, default="") -> str:
    value = field(obj, key, (str, type(None)), default)
    return (value or "")[:2000]


def int_list(value, what="size") -> list[int]:
    if not isinstance(value, list) or len(value) > 8 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**9 for v in value):
        raise MalformedReport(f"{what} is not a short list of non-negative integers")
    return value


def shapes_field(obj, key="state_dict") -> dict[str, list[int]]:
    """A reported ``{state_dict key: shape}`` map, every shape checked."""
    return {str(k): int_list(v, f"shape of {k!r}") for k, v in field(obj, key, dict).items()}


def decode_array(obj) -> np.ndarray:
    shape = int_list(field(obj, "shape", list), "array shape")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise MalformedReport(f"array of {count} elements is larger than allowed")
    try:
        raw = base64.b64decode(field(obj, "b64", str), validate=True)
    except binascii.Error:
        raise MalformedReport("array data is not base64") from None
    if len(raw) != 4 * count:
        raise MalformedReport(f"array data holds {len(raw)} bytes, its shape needs {4 * count}")
    return np.frombuffer(raw, dtype=np.float32).reshape(shape)


def error_text(obj) -> str | None:
    """A student's exception as one line, with its line in resnet50_skeleton.py."""
    if obj is None:
        return None
    kind = text(obj, "type", "Error") or "Error"
    message = text(obj, "message", "")
    line = field(obj, "line", (int, type(None)), None)
    where = f" (resnet50_skeleton.py line {line})" if line is not None else ""
    return f"{kind}: {message}{where}" if message else f"{kind}{where}"
