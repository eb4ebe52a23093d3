"""Step 3: score every pair of compared files from what they share that is rare.

Evidence is counted in *own tokens*: tokens a student wrote that the kit does
not contain (see ``fingerprint``), shared with the other file inside a common
k-gram. A k-gram counts as much as it is rare in the class (``rarity``): one
that two students share is full evidence, one that half the class shares is
none. Weaker evidence is added in the same unit, each kind capped so that it
cannot make a pair look copied alone: shared rare comments, shared rare layout
habits, and (with ``--grades``) the same rare deductions.

The score is ``1 - exp(-evidence / SCALE)``: 0 for nothing shared, about 0.5
for 14 own tokens shared by only two students, 0.9 for 46.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autograder.similarity.extract import StudentFile
import numpy as np

from autograder.similarity.fingerprint import K, Fingerprint, TokenIds, kgram_hashes
from autograder.similarity.normalise import Tokens

SCALE = 20.0                 # own tokens of evidence for a score of 1 - 1/e (0.63)
COMMENT_TOKENS, COMMENT_CAP = 3.0, 9.0          # per shared rare comment, at most in all
LAYOUT_TOKENS, LAYOUT_CAP = 2.0, 4.0            # per shared rare layout habit
DEDUCTION_TOKENS, DEDUCTION_CAP = 6.0, 18.0     # per shared rare deduction (--grades)
# per shared rare deviation from the reference (a changed value where the class wrote the
# reference's): enough to rank a copied one-value mistake above honest pairs, not to flag it alone
DEVIATION_TOKENS, DEVIATION_CAP = 4.0, 12.0
MAX_POSITIONS = 8            # a k-gram repeated more often in one file adds no new evidence


@functools.lru_cache(maxsize=4096)
def rarity(shared_by: int, class_size: int) -> float:
    """1 for something two students share, low already for three, 0 for half the class (or more).

    Three or more students writing the same thing independently is ordinary (an idiom,
    a common mistake); only a pair is unusual, so the weight falls with the square."""
    if shared_by < 2:
        return 0.0
    half = class_size / 2
    if shared_by > 2 and shared_by >= half:
        return 0.0
    if half <= 2 or shared_by == 2:
        return 1.0
    return max(0.0, math.log(half / shared_by) / math.log(half / 2)) * (2 / shared_by) ** 2


IDIOM = 4                    # tokens per idiom n-gram: ``. append ( ResidualBlock``


def idiom_weights(texts_per_file: list[list[str]], class_size: int) -> list[np.ndarray]:
    """Per file, per token: the rarity of the most common short n-gram around it.

    A stage built in a loop, ``add_module`` or ``_make_layer`` is written by many students
    in short pieces that the whole class shares; a token only inside such pieces is an
    idiom, worth little even where two files happen to share a longer k-gram of them."""
    token_ids = TokenIds()
    grams = [kgram_hashes(token_ids(texts), IDIOM) for texts in texts_per_file]
    frequency = _document_frequency(set(g.tolist()) for g in grams)
    weights = []
    for texts, hashes in zip(texts_per_file, grams):
        per_gram = np.array([rarity(frequency[h], class_size) for h in hashes.tolist()], dtype=float)
        per_token = np.ones(len(texts))
        for offset in range(min(IDIOM, len(per_gram))):
            per_token[offset:offset + len(per_gram)] = np.minimum(per_token[offset:offset + len(per_gram)], per_gram)
        weights.append(per_token)
    return weights


@dataclass
class Fragment:
    """A stretch of code the two files share: token and line ranges in each."""
    a_tokens: tuple[int, int]
    b_tokens: tuple[int, int]
    a_lines: tuple[int, int]
    b_lines: tuple[int, int]
    own_tokens: int
    weighted: float = 0.0       # its own tokens at their rarity (the mean of the two sides)


@dataclass(slots=True)
class PairScore:
    a: str
    b: str
    score: float = 0.0
    code_evidence: float = 0.0
    # Empty tuples, not lists: most pairs of a large class share nothing and keep these.
    fragments: Sequence[Fragment] = ()
    # The rare ones, each as (what, its evidence in own tokens before the cap of its kind).
    shared_deductions: Sequence[tuple[str, float]] = ()
    shared_comments: Sequence[tuple[str, float]] = ()
    shared_layout: Sequence[tuple[str, float]] = ()
    # (lines in a, lines in b, line in the reference, the reference's tokens, tokens written), evidence
    shared_deviations: Sequence[tuple[tuple, float]] = ()
    # each kind's evidence after its cap: comments, deviations, layout, deductions
    capped: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @property
    def evidence(self) -> float:
        return self.code_evidence + sum(self.capped)


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


def _own_evidence(fp: Fingerprint, shared: list[tuple[float, int]], idiom: np.ndarray) -> np.ndarray:
    """Per token: its evidence as an own token covered by the shared k-grams, at the rarity
    of its rarest k-gram and at most that of its idiom (``idiom_weights``); 0 elsewhere."""
    covered = np.zeros(len(fp.own), dtype=bool)
    weights = np.zeros(len(fp.own))
    for weight, hash_value in shared:          # rarest first
        for start in fp.positions.get(hash_value, ()):
            end = start + K
            new = fp.own[start:end] & ~covered[start:end]
            if new.any():
                weights[start:end][new] = np.minimum(weight, idiom[start:end][new])
                covered[start:end] |= new
    return weights


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
    idioms = idiom_weights([s.tokens.texts for s in students], n)
    frequency = _document_frequency(hash_sets)
    code_pairs = _rare_pairs(hash_sets, n)
    comment_sets = [{text for _, text in s.comments} for s in students]
    comment_pairs, comment_frequency = _rare_pairs(comment_sets, n), _document_frequency(comment_sets)
    layout_pairs = _rare_pairs([s.layout for s in students], n)
    deviation_sets = [fp.deviations for fp in prints]
    deviation_pairs, deviation_frequency = _rare_pairs(deviation_sets, n), _document_frequency(deviation_sets)
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
        weights_i = _own_evidence(prints[i], weighted, idioms[i])
        weights_j = _own_evidence(prints[j], weighted, idioms[j])
        evidence = float(weights_i.sum() + weights_j.sum()) / 2
        if evidence > 0:
            pair = pair_of(i, j)
            pair.code_evidence = evidence
            pair.fragments = shared_fragments(students[i].tokens, prints[i], students[j].tokens, prints[j], hashes)
            for fragment in pair.fragments:
                fragment.weighted = float(weights_i[slice(*fragment.a_tokens)].sum()
                                          + weights_j[slice(*fragment.b_tokens)].sum()) / 2

    def weighed(found, per_item: float, frequency, count: int) -> list[tuple]:
        return [(item, per_item * rarity(frequency[item], count)) for item in sorted(found)]

    for (i, j), texts in comment_pairs.items():
        pair_of(i, j).shared_comments = weighed(texts, COMMENT_TOKENS, comment_frequency, n)
    for (i, j), habits in layout_pairs.items():
        pair_of(i, j).shared_layout = weighed(habits, LAYOUT_TOKENS, layout_frequency, n)
    for (i, j), found in deviation_pairs.items():
        pair_of(i, j).shared_deviations = [
            ((prints[i].deviation_lines[d][:2], prints[j].deviation_lines[d][:2], prints[i].deviation_lines[d][2],
              prints[i].deviation_lines[d][3], d[2]), weight)
            for d, weight in weighed(found, DEVIATION_TOKENS, deviation_frequency, n)]
    for (i, j), found in deduction_pairs.items():
        counts, graded_count = deduction_frequency
        pair_of(i, j).shared_deductions = weighed(found, DEDUCTION_TOKENS, counts, graded_count)

    for pair in results.values():
        pair.capped = tuple(min(cap, sum(weight for _, weight in items)) for items, cap in (
            (pair.shared_comments, COMMENT_CAP), (pair.shared_deviations, DEVIATION_CAP),
            (pair.shared_layout, LAYOUT_CAP), (pair.shared_deductions, DEDUCTION_CAP)))
        pair.score = 1 - math.exp(-pair.evidence / SCALE)
    ranked = sorted(results.values(), key=lambda p: (-p.score, p.a, p.b))
    # Pairs that share nothing rare score 0, in name order (students come sorted by name).
    ranked += [PairScore(students[i].student, students[j].student)
               for i, j in itertools.combinations(range(n), 2) if (i, j) not in results]
    return ranked
