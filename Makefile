# The two commands of the README. Both create or reuse .venv/ in the repo root.
.PHONY: demo test setup

setup:
	scripts/setup.sh

demo: setup
	.venv/bin/goat demo

test: setup
	.venv/bin/pytest -q
