"""HTTP: one FastAPI app, one router module per documented surface."""
