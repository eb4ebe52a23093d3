"""Step 3: score every pair of compared files from what they share that is rare.

Evidence is counted in *own tokens*: tokens a student wrote that the kit does
not contain (see ``fingerprint``), shared with the other file inside a common
k-gram. A k-gram counts as much as it is rare in the class (``rarity``): one
that two students share is full evidence, one that half the class shares is
none. Weaker evidence is added in the same unit, each kind capped so that it
cannot make a pair look copied alone: shared rare comments, shared rare layout
habits, and (with ``--grades``) the same rare deductions.

The score is ``1 - exp(-evidence / SCALE)``: 0 for nothing shared, about 0.5
for 20 own tokens, near 1 for a helper function of one's own shared whole.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autograder.similarity.extract import StudentFile
from autograder.similarity.fingerprint import K, Fingerprint
from autograder.similarity.normalise import Tokens

SCALE = 30.0                 # own tokens of evidence for a score of 1 - 1/e (0.63)
COMMENT_TOKENS, COMMENT_CAP = 3.0, 9.0          # per shared rare comment, at most in all
LAYOUT_TOKENS, LAYOUT_CAP = 2.0, 4.0            # per shared rare layout habit
DEDUCTION_TOKENS, DEDUCTION_CAP = 6.0, 18.0     # per shared rare deduction (--grades)
MAX_POSITIONS = 8            # a k-gram repeated more often in one file adds no new evidence


@functools.lru_cache(maxsize=4096)
def rarity(shared_by: int, class_size: int) -> float:
    """1 for something two students share, falling to 0 for half the class (or more)."""
    if shared_by < 2:
        return 0.0
    half = class_size / 2
    if shared_by > 2 and shared_by >= half:
        return 0.0
    if half <= 2:
        return 1.0
    return max(0.0, math.log(half / shared_by) / math.log(half / 2))


@dataclass
class Fragment:
    """A stretch of code the two files share: token and line ranges in each."""
    a_tokens: tuple[int, int]
    b_tokens: tuple[int, int]
    a_lines: tuple[int, int]
    b_lines: tuple[int, int]
    own_tokens: int


@dataclass(slots=True)
class PairScore:
    a: str
    b: str
    score: float = 0.0
    code_evidence: float = 0.0
    # Empty tuples, not lists: most pairs of a large class share nothing and keep these.
    fragments: Sequence[Fragment] = ()
    shared_deductions: Sequence[str] = ()   # the rare ones
    shared_comments: Sequence[str] = ()
    shared_layout: Sequence[str] = ()


def _document_frequency(sets) -> dict:
    counts: dict = defaultdict(int)
    for keys in sets:
        for key in keys:
            counts[key] += 1
    return counts


def _rare_pairs(sets: list, class_size: int) -> dict[tuple[int, int], list]:
    """(i, j) -> the keys files i and j share whose rarity is above 0."""
    holders: dict = defaultdict(list)
    for index, keys in enumerate(sets):
        for key in keys:
            holders[key].append(index)
    pairs: dict[tuple[int, int], list] = defaultdict(list)
    for key, who in holders.items():
        if rarity(len(who), class_size) > 0:
            for pair in itertools.combinations(who, 2):
                pairs[pair].append(key)
    return pairs


def _own_evidence(fp: Fingerprint, shared: list[tuple[float, int]]) -> float:
    """Own tokens covered by the shared k-grams, each at the rarity of its rarest k-gram."""
    covered, evidence = 0, 0.0
    for weight, hash_value in shared:          # rarest first
        new = fp.own_cover(hash_value) & ~covered
        if new:
            evidence += weight * new.bit_count()
            covered |= new
    return evidence


def _lines(tokens: Tokens, start: int, end: int) -> tuple[int, int]:
    return min(tokens.first[start:end]), max(tokens.last[start:end])


def _own_span(fp: Fingerprint, tokens: tuple[int, int]) -> tuple[int, int]:
    """``tokens`` narrowed to its first and last own token (the context around them is the kit's)."""
    own = fp.own[tokens[0]:tokens[1]].nonzero()[0]
    return (tokens[0] + int(own[0]), tokens[0] + int(own[-1]) + 1) if len(own) else tokens


def shared_fragments(a: Tokens, fa: Fingerprint, b: Tokens, fb: Fingerprint,
                     hashes: list[int]) -> list[Fragment]:
    """Matched k-grams chained along the same diagonal into stretches that hold own tokens."""
    matches = sorted((pa - pb, pa, pb) for h in hashes
                     for pa in fa.positions[h][:MAX_POSITIONS] for pb in fb.positions[h][:MAX_POSITIONS])
    runs: list[list[int]] = []              # [diagonal, first start in a, last start in a]
    for diagonal, pa, _ in matches:
        if runs and runs[-1][0] == diagonal and pa <= runs[-1][2] + K:
            runs[-1][2] = pa
        else:
            runs.append([diagonal, pa, pa])
    candidates = []
    for diagonal, first, last in runs:
        a_range = (first, last + K)
        b_range = (first - diagonal, last + K - diagonal)
        mask_a = ((1 << (a_range[1] - a_range[0])) - 1) << a_range[0]
        mask_b = ((1 << (b_range[1] - b_range[0])) - 1) << b_range[0]
        own = max((fa.own_bits & mask_a).bit_count(), (fb.own_bits & mask_b).bit_count())
        if own:
            candidates.append((own, a_range, b_range))
    kept: list[Fragment] = []
    for own, a_range, b_range in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if any(a_range[0] < f.a_tokens[1] and f.a_tokens[0] < a_range[1]
               or b_range[0] < f.b_tokens[1] and f.b_tokens[0] < b_range[1] for f in kept):
            continue                        # the same stretch, matched again elsewhere
        kept.append(Fragment(a_range, b_range, _lines(a, *_own_span(fa, a_range)), _lines(b, *_own_span(fb, b_range)),
                             own))
    return sorted(kept, key=lambda f: f.a_tokens)


def score_pairs(students: list[StudentFile], prints: list[Fingerprint],
                deductions: dict[str, set[str]] | None = None,
                progress: Callable = lambda it, **kw: it) -> list[PairScore]:
    """A score for every pair of ``students`` (all compared), highest first."""
    n = len(students)
    hash_sets = [set(fp.positions) for fp in prints]
    frequency = _document_frequency(hash_sets)
    code_pairs = _rare_pairs(hash_sets, n)
    comment_sets = [{text for _, text in s.comments} for s in students]
    comment_pairs, comment_frequency = _rare_pairs(comment_sets, n), _document_frequency(comment_sets)
    layout_pairs = _rare_pairs([s.layout for s in students], n)
    layout_frequency = _document_frequency(s.layout for s in students)
    deduction_pairs, deduction_frequency = {}, {}
    if deductions is not None:
        graded = [deductions.get(s.student, set()) for s in students]
        graded_count = sum(1 for s in students if s.student in deductions)
        deduction_pairs = _rare_pairs(graded, graded_count)
        deduction_frequency = (_document_frequency(graded), graded_count)

    results: dict[tuple[int, int], PairScore] = {}

    def pair_of(i: int, j: int) -> PairScore:
        if (i, j) not in results:
            results[i, j] = PairScore(students[i].student, students[j].student)
        return results[i, j]

    for (i, j), hashes in progress(code_pairs.items(), desc="comparing", unit="pair"):
        weighted = sorted(((rarity(frequency[h], n), h) for h in hashes), reverse=True)
        evidence = (_own_evidence(prints[i], weighted) + _own_evidence(prints[j], weighted)) / 2
        if evidence > 0:
            pair = pair_of(i, j)
            pair.code_evidence = evidence
            pair.fragments = shared_fragments(students[i].tokens, prints[i], students[j].tokens, prints[j], hashes)
    for (i, j), texts in comment_pairs.items():
        pair_of(i, j).shared_comments = sorted(texts)
    for (i, j), habits in layout_pairs.items():
        pair_of(i, j).shared_layout = sorted(habits)
    for (i, j), found in deduction_pairs.items():
        pair_of(i, j).shared_deductions = sorted(found)

    for pair in results.values():
        evidence = pair.code_evidence
        evidence += min(COMMENT_CAP, sum(COMMENT_TOKENS * rarity(comment_frequency[c], n)
                                         for c in pair.shared_comments))
        evidence += min(LAYOUT_CAP, sum(LAYOUT_TOKENS * rarity(layout_frequency[h], n) for h in pair.shared_layout))
        if pair.shared_deductions:
            counts, graded_count = deduction_frequency
            evidence += min(DEDUCTION_CAP, sum(DEDUCTION_TOKENS * rarity(counts[d], graded_count)
                                               for d in pair.shared_deductions))
        pair.score = 1 - math.exp(-evidence / SCALE)
    ranked = sorted(results.values(), key=lambda p: (-p.score, p.a, p.b))
    # Pairs that share nothing rare score 0, in name order (students come sorted by name).
    ranked += [PairScore(students[i].student, students[j].student)
               for i, j in itertools.combinations(range(n), 2) if (i, j) not in results]
    return ranked
