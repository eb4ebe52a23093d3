"""The notebook's data code, run from its tagged cells so that it lives in one place.

``solutions/CNN_Implementation.ipynb`` defines the synthetic CIFAR-10 writer (cell tagged
``kit:synthetic-cifar10``) and ``TensorCIFAR10`` (``kit:data-pipeline``). The trainer and
the benchmarks execute those cells instead of keeping a second copy of the code.
"""
from __future__ import annotations

import json
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "solutions" / "CNN_Implementation.ipynb"
DATA_TAGS = ("kit:synthetic-cifar10", "kit:data-pipeline")


class NotebookCellsError(Exception):
    """The notebook or one of its tagged cells is missing."""


def notebook_namespace(notebook: Path = NOTEBOOK, tags=DATA_TAGS) -> dict:
    """Run the notebook's code cells with the given tags (in notebook order) and return their names."""
    try:
        cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError) as exc:
        raise NotebookCellsError(f"cannot read the notebook cells from {notebook}: {exc}") from None
    namespace: dict = {"__name__": "kit_notebook_cells"}
    found = set()
    for cell in cells:
        cell_tags = set(cell.get("metadata", {}).get("tags", ())) & set(tags)
        if cell["cell_type"] == "code" and cell_tags:
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            exec(compile(source, f"{Path(notebook).name}[{','.join(sorted(cell_tags))}]", "exec"), namespace)
            found |= cell_tags
    missing = set(tags) - found
    if missing:
        raise NotebookCellsError(f"{notebook} has no code cell tagged {', '.join(sorted(missing))}")
    return namespace
