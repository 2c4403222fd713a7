#!/usr/bin/env bash
# Create or reuse the virtual environment of the Letta server the tests run L1 against.
# Letta 0.11.7 is the last release that serves its REST API on SQLite; its dependencies are
# pinned (letta-constraints-0.11.7.txt) because newer ones break it, and it lives outside
# the app's .venv/ because it would downgrade langchain and langgraph there.
# The environment (about 900 MB, 2 minutes to build) is kept outside the clone, in
# $GOAT_LETTA_VENV (default ~/.cache/goat/letta-0.11.7), so CI reuses it between runs.
# Prints the path of the `letta` executable.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${GOAT_LETTA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/goat/letta-0.11.7}"
stamp="$venv/.goat-installed-$(sha1sum scripts/letta-constraints-0.11.7.txt scripts/letta-server.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "Installing the Letta server for the tests into $venv (the first time takes a few minutes)…" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -qq 'letta[sqlite,server]==0.11.7' -c scripts/letta-constraints-0.11.7.txt >&2
    touch "$stamp"
fi
echo "$venv/bin/letta"
