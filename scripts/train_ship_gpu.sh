#!/usr/bin/env bash
# Train the shipped model (profile `ship`) in one go on a bare GPU machine, then export it.
# Needs: Debian/Ubuntu as root (setup.sh installs libfluidsynth3 and the soundfonts) and a
# Python with a CUDA torch, or internet to install one. Writes best.pt, run.json, log.csv and
# the exported si_umx_prior.pt/.json under $OUT (default ./out). Copy them back, put
# run.json/best.pt under data/ship/models/modern-si_umx_prior/ and run
# the steps of DEVELOPERS.md from `python scripts/ship_model.py` on (export, `make reproduce`, card).
# Not run on a GPU yet (no device was lent to the session that wrote it): expect to adapt.
set -euo pipefail
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    PY=python3                                   # the machine's own CUDA torch
    $PY -m pip install -q --no-deps -e . || true
else
    VENV=.venv-gpu bash scripts/setup.sh       # PyPI torch==2.13.0 on Linux x86_64 is a CUDA build
    PY=.venv-gpu/bin/python
fi
$PY -m guitarsep.app.cli build-corpus --profile ship --quiet
$PY -m guitarsep.app.cli train --profile ship --model si_umx_prior --setting modern --device cuda --quiet
RUN=data/ship/models/modern-si_umx_prior
cp "$RUN/best.pt" "$RUN/run.json" "$RUN/log.csv" "$OUT/"
$PY -m guitarsep.app.cli export "$RUN/best.pt" "$OUT/si_umx_prior.pt" --float16
