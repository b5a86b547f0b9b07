"""pipelines: the MLOps layer (DVC stages, Great Expectations contracts, the gate, Prefect flows, CLI).

It imports ``mtl_core``; ``mtl_core`` never imports it.
"""
