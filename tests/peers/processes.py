"""Start peer processes so that they cannot outlive the test run, and stop them in steps.

Every peer runs in its own session (process group), so a signal reaches the peer and nothing else
of ours. Three nets catch a peer whose test did not stop it: the helpers' context managers, an
``atexit`` hook that kills whatever is still registered, and -- when ``setpriv`` (util-linux) is
there and the caller is the main thread -- ``PR_SET_PDEATHSIG``, so the kernel kills the peer if
the test process dies without running any Python cleanup.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

_live: set[subprocess.Popen[bytes]] = set()
_lock = threading.Lock()


def spawn(argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, ...)`` in a new session, killed with the test process."""
    argv = list(argv)
    setpriv = shutil.which("setpriv")
    # The death signal follows the thread that forked: only tie it to the main thread.
    if setpriv and threading.current_thread() is threading.main_thread():
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    proc: subprocess.Popen[bytes] = subprocess.Popen(argv, start_new_session=True, **popen_kwargs)
    with _lock:
        _live.add(proc)
    return proc


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the peer's process group (its session: the peer only)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def stop(proc: subprocess.Popen[bytes], steps: Sequence[tuple[signal.Signals | None, float]]) -> None:
    """Wait for ``proc`` to exit, sending each step's signal (None: just wait) and then waiting its
    seconds, until it has exited; SIGKILL at the end if all steps failed."""
    try:
        for sig, wait in steps:
            if proc.poll() is not None:
                break
            if sig is not None:
                signal_group(proc, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            signal_group(proc, signal.SIGKILL)
            proc.wait()
    finally:
        with _lock:
            _live.discard(proc)


@atexit.register
def _kill_leftovers() -> None:
    with _lock:
        leftovers = list(_live)
        _live.clear()
    for proc in leftovers:
        signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
