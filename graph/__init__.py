"""The engine: the whole turn (graph.py) and what runs it (runner.py), over its rooms below."""
