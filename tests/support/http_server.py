"""Run an ASGI app on a real loopback port in a background thread, for peers the tests stand up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.support.throwaway import free_port, wait_for_port


@contextmanager
def serve_in_thread(app: Any, *, lifespan: str = "off") -> Iterator[str]:
    """Yields the base URL (`http://127.0.0.1:PORT`) while `app` is being served."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
