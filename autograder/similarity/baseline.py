"""Plain MOSS-style winnowing, without this kit's boilerplate: the comparison point.

Each file becomes tokens with every identifier renamed (as MOSS does), its
k-grams are hashed and winnowed, and a pair scores the share of each file's
fingerprints found in the other (the mean of the two). On this assignment it
ranks two honest students with the reference answer at 1.0, above any copy.
Not used by the command; ``benchmarks/similarity_speed.py`` and the tests
print and check both rankings on the same class.
"""
from __future__ import annotations

import builtins
import itertools
import keyword

from autograder.similarity.fingerprint import K, TokenIds, kgram_hashes, winnow
from autograder.similarity.normalise import Vocabulary, text_tokens

WINDOW = 8            # MOSS-style guarantee: any shared run of K + WINDOW - 1 tokens is found
PLAIN_VOCABULARY = Vocabulary(names=frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self"},
                              attributes=frozenset(), self_attributes=frozenset())


def plain_winnowing(files: dict[str, str], k: int = K, window: int = WINDOW) -> list[tuple[str, str, float]]:
    """(student_a, student_b, score) for every pair, highest first."""
    token_ids = TokenIds()
    prints = {}
    for student, source in files.items():
        texts = text_tokens(source, PLAIN_VOCABULARY).texts
        prints[student] = set(winnow(kgram_hashes(token_ids(texts), k), window).tolist())
    ranked = []
    for a, b in itertools.combinations(sorted(prints), 2):
        fa, fb = prints[a], prints[b]
        shared = len(fa & fb)
        score = (shared / len(fa) + shared / len(fb)) / 2 if fa and fb else 0.0
        ranked.append((a, b, score))
    return sorted(ranked, key=lambda r: (-r[2], r[0], r[1]))
