# The two commands of the README. Both create or reuse .venv/ in the repo root.
.PHONY: demo test setup letta notebooks docs

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/goat demo

# The Letta server the L1-on-Letta tests start: its own environment, kept outside the clone.
letta:
	scripts/letta-server.sh >/dev/null

test: setup letta
	.venv/bin/pytest -q

# The four tuning notebooks, headless: their tables and recommendations printed, the executed
# copies in a temporary folder, their figures in notebooks/figures/ (docs/benchmarks.md shows them).
notebooks: setup
	.venv/bin/python notebooks/execute.py

# The generated docs: docs/settings.md from the settings tree (graph/settings.py), and README.md's figures table from
# docs/benchmarks.md. tests/test_docs.py fails until this has been run after either changes.
docs: setup
	.venv/bin/python scripts/docs.py
