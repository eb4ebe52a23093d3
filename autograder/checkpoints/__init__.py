"""TA: produce, describe, check and hand out the two checkpoints the notebook starts from.

  models.py          the two models by name, and the file names the handout uses
  notebook_cells.py  the notebook's own data code (synthetic CIFAR-10, TensorCIFAR10), run from its cells
  data.py            CIFAR-10 for training: torchvision's, the course's folder, or the synthetic one
  recipes.py         the handout's schedule ("original") and the fast one
  train.py           python -m autograder checkpoints train
  manifest.py        checkpoints/manifest.json: what each file is and how it was made
  verify.py          python -m autograder checkpoints verify
"""
