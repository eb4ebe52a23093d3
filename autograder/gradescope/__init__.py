"""Grading on Gradescope: the zip for its "Configure Autograder" page, and what runs in it.

  bundle.py          ``python -m autograder gradescope --out autograder.zip`` builds the zip
  setup.sh           (in the zip) installs the pinned, CPU-only dependencies
  run_autograder     (in the zip) Gradescope's entry point; runs ``run.py``
  run.py             one submission: find it, grade it with ``grade_batch``, write results.json
  submission.py      find the file to grade in what the student uploaded (zips read in memory)
  results.py         Gradescope's results.json, checked by results.schema.json in the tests
"""
