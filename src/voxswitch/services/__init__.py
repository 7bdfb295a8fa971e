"""Use cases over store and engine, free of HTTP so the CLI, jobs and every API surface share them."""
