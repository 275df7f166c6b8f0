#!/usr/bin/env bash
# The install steps of docker/Dockerfile, kept as a script that CI checks
# (tests/test_docker_install.py): the Dockerfile runs it from the repository root.
#
# 1. The set-up command of README.md, verbatim: a virtual environment in .venv with PyBT and
#    its demo extra (Keras, PyTorch, scikit-learn), then `pybt demo`, so a broken image fails
#    its build instead of its first user.
# 2. What the notebook and the examples need besides: matplotlib (the plot extra), pandas,
#    gymnasium (examples/cartpole.py) and the Jupyter notebook server.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python3 -m venv .venv && .venv/bin/pip install -e ".[demo]" -c constraints.txt && .venv/bin/pybt demo

.venv/bin/pip install -e ".[demo,plot]" "pandas>=1.5" "gymnasium>=1.0" "notebook>=7" -c constraints.txt
