"""Course kit tooling for the CIFAR-10 CNN assignment.

Folders by what the user is doing:
  spec/       the slide table (and rubric) as data, read by everything else
  check/      describe a model stage by stage and compare it with the table
  release/    TA: generate student files from solutions/, check for leaks
  grade/      instructor: grade submissions in isolated child processes
"""
