"""Similarity report: which pairs of submissions share more than the assignment made them share.

One module per step, in order: ``extract`` (find and read the files, never
running them), ``normalise`` (tokens with the accepted forms rewritten and the
renamable names erased), ``fingerprint`` (k-grams, and which tokens are the
student's own rather than the kit's), ``score`` (rare shared evidence per pair),
``deductions`` (a grade run's findings, for ``--grades``), ``report`` (CSV,
Markdown, heatmap); ``run`` chains them. ``baseline`` is plain MOSS-style
winnowing, kept to show what this kit's boilerplate handling changes.
"""
