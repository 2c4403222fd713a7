"""`goat bench`: what GOAT's memory costs per turn and what it recalls, measured on real backends.

Sections (each prints Markdown tables and writes ``<out>/<section>.json``):
``overhead`` (turn time but the model's, vs. archive size), ``deadline`` (the prefetch deadline
against a deliberately slowed store), ``import`` (bulk-import throughput), ``locomo``
(evidence recall and L3 tokens on LoCoMo, next to plain top-k vector search) and
``checkpoint`` (Redis memory of one chat's checkpoints).

A developer's tool, not in the package: it runs from a clone (``make setup`` puts the clone on the
environment's path).
"""
