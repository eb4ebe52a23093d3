"""Step 2: k-grams of normalised tokens, and what in each file is the student's own.

Every run of ``K`` consecutive tokens is hashed. A token is *boilerplate* when
some k-gram around it also occurs in the kit's own files (the released
skeleton, the solution and its accepted variants); the other tokens are the
student's *own*: what they wrote that nobody had to write. Only own tokens
count as evidence later.

All k-grams are kept (a file has about a thousand tokens), so the matching is
exact; ``winnow`` is the MOSS selection, used by the plain baseline.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import numpy as np

from autograder.similarity.normalise import Tokens, code_tokens

K = 12                      # tokens per k-gram: about one statement such as ``conv3x3(V, V, 2, 1),``
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)   # odd: the polynomial hash wraps modulo 2**64


class TokenIds:
    """Token text -> a 64-bit number, the same for every file of one run (Python's
    string hash: every file is fingerprinted in this one process)."""

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.fromiter(map(hash, texts), dtype=np.int64, count=len(texts)).view(np.uint64)


def kgram_hashes(ids: np.ndarray, k: int = K) -> np.ndarray:
    """The hash of every k consecutive ids (empty when there are fewer than k)."""
    count = len(ids) - k + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(k):
            hashes = hashes * _MULTIPLIER + ids[offset:offset + count]
    return hashes


def winnow(hashes: np.ndarray, window: int) -> np.ndarray:
    """MOSS's winnowing: the smallest hash of every ``window`` consecutive k-grams."""
    if len(hashes) <= window:
        return np.unique(hashes[:1] if len(hashes) == 0 else hashes[[hashes.argmin()]])
    views = np.lib.stride_tricks.sliding_window_view(hashes, window)
    picked = views.argmin(axis=1) + np.arange(len(views))
    return np.unique(hashes[np.unique(picked)])


@dataclass
class Fingerprint:
    """One file's k-grams: the own-token mask and, per k-gram not in the kit, its positions."""
    hashes: np.ndarray                  # hash of the k-gram starting at each token
    own: np.ndarray                     # bool per token: not covered by any boilerplate k-gram
    own_bits: int                       # the same as a Python int (bit i = token i)
    positions: dict[int, list[int]]     # non-boilerplate hash -> start positions
    deviations: frozenset = frozenset()  # small changes from the reference (see ``aligned_with_kit``)
    # each deviation -> (first line, last line in this file, line in the reference, the reference's tokens)
    deviation_lines: dict = field(default_factory=dict)

    @property
    def own_count(self) -> int:
        return int(self.own.sum())

    def own_cover(self, hash_value: int, k: int = K) -> int:
        """Bits of the own tokens inside the k-grams with this hash."""
        bits = 0
        window = (1 << k) - 1
        for start in self.positions.get(hash_value, ()):
            bits |= window << start
        return bits & self.own_bits


def boilerplate_hashes(sources, vocab, token_ids: TokenIds, k: int = K) -> np.ndarray:
    """Sorted hashes of every k-gram of the kit's files."""
    found = [kgram_hashes(token_ids(code_tokens(source, vocab).texts), k) for source in sources]
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)


MIN_ALIGNED = 2      # a lone aligned token (a bracket, a comma) inside one's own code stays one's own
DEVIATION_TOKENS = 3  # a changed value or argument of at most this many tokens on each side


def kit_streams(sources, vocab) -> list[Tokens]:
    """The normalised token streams that each file is aligned with (the skeleton and the solution)."""
    return [code_tokens(source, vocab) for source in sources]


def _line_groups(tokens: Tokens) -> list[tuple[int, int]]:
    """(first, end) token index of each source line's tokens."""
    groups: list[tuple[int, int]] = []
    for index, line in enumerate(tokens.first):
        if groups and tokens.first[groups[-1][0]] == line:
            groups[-1] = (groups[-1][0], index + 1)
        else:
            groups.append((index, index + 1))
    return groups


def aligned_with_kit(tokens: Tokens, streams: list[Tokens]) -> tuple[np.ndarray, dict]:
    """bool per token: part of a run of tokens that a diff against one of ``streams`` matches;
    and the small deviations from the last stream (the reference solution): a changed literal
    or argument, keyed by where it sits in the solution and what the student wrote instead.

    The k-gram test alone leaves kit text between two nearby edits (``) self . layer4 =
    nn . Sequential (``) counted as the student's own; an alignment does not. The diff runs
    on lines first, then on the tokens of the lines that differ (a token diff of whole
    files costs a second per file)."""
    texts = tokens.texts
    aligned = np.zeros(len(texts), dtype=bool)
    deviations: dict = {}
    mine = _line_groups(tokens)
    my_lines = [tuple(texts[start:end]) for start, end in mine]
    for stream in streams:
        theirs = _line_groups(stream)
        their_lines = [tuple(stream.texts[start:end]) for start, end in theirs]
        last = stream is streams[-1]
        lines = difflib.SequenceMatcher(None, my_lines, their_lines, autojunk=False)
        for tag, i1, i2, j1, j2 in lines.get_opcodes():
            a0 = mine[i1][0] if i1 < i2 else (mine[i1][0] if i1 < len(mine) else len(texts))
            a1 = mine[i2 - 1][1] if i1 < i2 else a0
            b0 = theirs[j1][0] if j1 < j2 else (theirs[j1][0] if j1 < len(theirs) else len(stream.texts))
            b1 = theirs[j2 - 1][1] if j1 < j2 else b0
            if tag == "equal":
                aligned[a0:a1] = True
                continue
            words = difflib.SequenceMatcher(None, texts[a0:a1], stream.texts[b0:b1], autojunk=False)
            for start, _, size in words.get_matching_blocks():
                if size >= MIN_ALIGNED:
                    aligned[a0 + start:a0 + start + size] = True
            # a changed value inside lines that otherwise match the reference's, one for one
            # (a rewritten block, such as forward() as a loop, is a different form, not a deviation)
            if last and tag == "replace" and i2 - i1 == j2 - j1:
                for op, s0, s1, r0, r1 in words.get_opcodes():
                    if op != "equal" and s1 - s0 <= DEVIATION_TOKENS and r1 - r0 <= DEVIATION_TOKENS:
                        at = min(a0 + s0, len(texts) - 1)
                        where = (tokens.first[at], tokens.last[max(at, a0 + s1 - 1)],
                                 stream.first[min(b0 + r0, len(stream.texts) - 1)], tuple(stream.texts[b0 + r0:b0 + r1]))
                        deviations.setdefault((b0 + r0, b0 + r1, tuple(texts[a0 + s0:a0 + s1])), where)
    return aligned, deviations


def fingerprint(tokens: Tokens, token_ids: TokenIds, boilerplate: np.ndarray, k: int = K,
                kit: list[Tokens] = ()) -> Fingerprint:
    """``kit``: token streams (``kit_streams``) whose aligned tokens are never the student's own."""
    hashes = kgram_hashes(token_ids(tokens.texts), k)
    in_kit = np.isin(hashes, boilerplate, assume_unique=False)
    covered = np.convolve(in_kit.astype(np.int32), np.ones(k, dtype=np.int32))[:len(tokens.texts)] > 0
    if len(hashes) == 0:
        covered = np.zeros(len(tokens.texts), dtype=bool)
    own = ~covered
    deviations: dict = {}
    if kit:
        aligned, deviations = aligned_with_kit(tokens, kit)
        own &= ~aligned
    own_bits = int.from_bytes(np.packbits(own, bitorder="little").tobytes(), "little")
    positions: dict[int, list[int]] = {}
    starts = np.flatnonzero(~in_kit)
    for hash_value, start in zip(hashes[starts].tolist(), starts.tolist()):
        positions.setdefault(hash_value, []).append(start)
    return Fingerprint(hashes, own, own_bits, positions, frozenset(deviations), deviations)
