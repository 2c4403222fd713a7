"""LoCoMo helpers for the tuning notebook; they live in ``bench.locomo``, shared with `goat bench`."""

from bench.locomo import *  # noqa: F403 (the notebook and its test use them as ``locomo.<name>``)
