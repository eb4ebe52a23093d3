#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image:
# the zip is unpacked in /autograder/source and this script runs from there.
#
# What it does (each step is skipped when already done, so running it twice is fine):
#   1. make sure Python 3 with venv support is installed (apt);
#   2. create a virtual environment in .venv beside this script;
#   3. install the grader's dependencies into it, at the versions the kit is tested with.
#
# torch comes from PyTorch's CPU-only wheel index. The default Linux wheel from PyPI
# pulls in the CUDA libraries: measured on the kit's own machine, torch 2.14.1+cu130
# took 1.2 GB and its nvidia-*/cuda-*/triton packages another 4.2 GB, about 5.4 GB in
# all. The CPU wheel needs none of those packages, so it saves at least their 4.2 GB
# (its own size was not measured: no access to PyTorch's index from the kit's machine).
# Gradescope's containers have no GPU, so the CUDA part would only slow every image build.
set -euo pipefail

kit="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$kit/.venv"

# --- the versions (change them together with the kit's own environment) -------------
TORCH_VERSION="2.14.1"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
TORCH_REQUIREMENT="torch==${TORCH_VERSION}+cpu"
# Only for a local dry run on a machine that cannot reach PyTorch's index (never on
# Gradescope): TORCH_INDEX and TORCH_WHEEL replace the two lines above, e.g.
#   TORCH_INDEX=https://pypi.org/simple TORCH_WHEEL=torch==2.14.1 bash setup.sh
TORCH_CPU_INDEX="${TORCH_INDEX:-$TORCH_CPU_INDEX}"
TORCH_REQUIREMENT="${TORCH_WHEEL:-$TORCH_REQUIREMENT}"
PINNED=(
    "numpy==2.4.6"
    "tqdm==4.70.1"
    # torch's own dependencies, pinned too so a rebuild months later gives the same image
    "filelock==4.3.1"
    "typing_extensions==4.16.0"
    "sympy==1.14.0"
    "mpmath==1.3.0"
    "networkx==3.6.1"
    "jinja2==3.1.6"
    "MarkupSafe==3.0.4"
    "fsspec==2026.9.0"
    "setuptools==84.2.1"
)

# --- 1. Python ------------------------------------------------------------------------
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends python3 python3-venv python3-pip
fi

# numpy 2.4 needs Python 3.11 or newer: choose Gradescope's Ubuntu 24.04 base image (Python 3.12).
if ! python3 -c "import sys; sys.exit(sys.version_info < (3, 11))"; then
    echo "setup.sh: Python 3.11 or newer is needed, found $(python3 --version 2>&1);" \
         "pick the Ubuntu 24.04 base image on Gradescope's Configure Autograder page" >&2
    exit 1
fi

# --- 2. the virtual environment -------------------------------------------------------
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi

# --- 3. dependencies (pip skips whatever is already installed at the pinned version) --
"$venv/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
    "${PINNED[@]}"
"$venv/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
    --index-url "$TORCH_CPU_INDEX" "$TORCH_REQUIREMENT"

# A last check that fails the image build now rather than every student's run later.
"$venv/bin/python" -c "import torch, numpy, tqdm; print('torch', torch.__version__, 'ready')"
chmod +x "$kit/run_autograder"

# --- 4. permissions the sandbox relies on ------------------------------------------------
# Student code runs as an unprivileged uid (65532), which must be able to read Python;
# when it cannot, run_autograder refuses to run student code at all (score 0 and a
# message for the staff) rather than run it as root. So make the venv readable and
# traversable by others, with the folders that lead to it: the kit's folder and, on
# Gradescope, /autograder. Folders above those are left as they are (on a machine of
# your own, a closed home folder stays closed: see the README's local dry run).
chmod -R o+rX "$venv"
chmod o+x "$kit"
parent="$(dirname "$kit")"
if [[ "$parent" == "/autograder" ]]; then
    chmod o+x "$parent"
fi
dir="$parent"
while [[ "$dir" != "/" ]]; do
    if ! stat -c %A "$dir" | grep -q '^d.\{8\}[xt]'; then
        echo "setup.sh: WARNING: $dir is not searchable by other users, so the sandbox's user" \
             "cannot reach the venv; student code will not run (run_autograder says so)" >&2
    fi
    dir="$(dirname "$dir")"
done
# ... and everything student code has no need to read (the reference solution, the full
# spec table, the rubric, the grader's own sources, gradescope.json) root-only: where the
# container allows no mount namespace or Landlock, file modes are all that keep it out.
# run_autograder does the same again before every run.
(cd "$kit" && "$venv/bin/python" -s -m autograder.gradescope.permissions "$kit")
