#!/usr/bin/env bash
# The README's main job: a fresh venv in .venv, the package, then train the default VAE on the
# bundled MNIST digits, log it to MLflow (./mlflow/mlflow.db) and export SavedModel + ONNX.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e ".[cpu]"
.venv/bin/gen-keras train --config pipelines/configs/vae_mnist10k.yaml "$@"
