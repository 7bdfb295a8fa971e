"""PJSIP user agents for tests: a child process running :mod:`tests.peers.pjsua_agent`.

    with PjsuaAgent(tmp_path, transports={"udp": 0}) as ua:
        acc = ua.add_account("sip:alice@127.0.0.1", registrar=f"sip:{registrar}", username="alice",
                             password="secret")
        ua.wait_registered(acc)
        call = ua.make_call(acc, "sip:bob@127.0.0.1:5062")
        ua.wait_call_state(call, "confirmed")
        ua.play(call, wav)                      # what the far end hears
        ua.record(call, tmp_path / "in.wav")    # what we hear
        ua.send_dtmf(call, "123")
        ua.hangup(call)

Every command is a request/reply over the agent's stdin/stdout; everything PJSIP reports arrives as
an event (``reg_state``, ``incoming_call``, ``call_state``, ``call_media``, ``dtmf_received``,
``message_received``, ``message_status``, ``options_response``, ``transfer_request``,
``transfer_status``, ``play_done``, ``record_done``). :meth:`PjsuaAgent.wait_event` waits for the
next matching event that no earlier wait consumed, so an event that came before the wait is not
lost. The PJSIP log (level 4, with every SIP message) is ``<workdir>/<name>.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.peers import availability, ports, processes, siplog
from tests.peers.siplog import SipMessage

AGENT = Path(__file__).with_name("pjsua_agent.py")
#: The default codec list: G.711 only, as every SIP peer has it (telephone-event is always added).
G711 = ["PCMU/8000", "PCMA/8000"]
Event = dict[str, Any]


class PjsuaError(RuntimeError):
    """A command the agent refused, or an agent that died or did not answer."""


def require_pjsua2() -> None:
    """Fail (CI) or skip the calling test unless ``pjsua2`` (pip ``pjsua2-python``) imports."""
    availability.require_module("pjsua2", "pjsua2")


class PjsuaAgent:
    """One PJSIP endpoint in a child process. A context manager; leaving it always stops it.

    ``transports`` maps ``udp``/``tcp``/``tls`` to a port (0: any free one); ``ports`` has the
    bound ones once started. ``tls`` is a mapping with ``cert_file``/``key_file`` (needed to
    accept TLS), ``ca_file`` and ``verify_server`` (default False). ``codecs`` restricts and
    orders codecs (default :data:`G711`; None keeps all of PJSIP's, Speex first).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "pjsua",
        transports: Mapping[str, int] | None = None,
        host: str = ports.LOOPBACK,
        tls: Mapping[str, Any] | None = None,
        codecs: list[str] | None = G711,
        log_level: int = 4,
        accept_transfers: bool = True,
        start_timeout: float = 10.0,
    ) -> None:
        require_pjsua2()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.host = host
        self.log_file = self.workdir / f"{name}.log"
        self.stderr_file = self.workdir / f"{name}.stderr"
        self.start_timeout = start_timeout
        if transports is None:
            transports = {"udp": ports.free_sip_port(host)}
        self.config: dict[str, Any] = {
            "host": host,
            "transports": dict(transports),
            "tls": {k: _jsonable(v) for k, v in (tls or {}).items()},
            "codecs": codecs,
            "log_level": log_level,
            "log_file": str(self.log_file),
            "accept_transfers": accept_transfers,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.version = ""
        self._events: list[Event] = []
        self._consumed: set[int] = set()
        self._replies: dict[int, Event] = {}
        self._cond = threading.Condition()
        self._ids = 0
        self._reader: threading.Thread | None = None
        self._closed = False

    # -- process ---------------------------------------------------------------------------
    def start(self) -> PjsuaAgent:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.stderr_file.open("wb") as err:
            self.proc = processes.spawn(
                [sys.executable, str(AGENT), json.dumps(self.config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=self.workdir,
                env=env,
            )
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-reader", daemon=True)
        self._reader.start()
        try:
            ready = self.wait_event("ready", timeout=self.start_timeout)
        except PjsuaError:
            self.close()
            raise
        self.ports = {k: int(v) for k, v in ready["ports"].items()}
        self.version = str(ready["version"])
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except json.JSONDecodeError:
                continue
            with self._cond:
                if "event" in msg:
                    self._events.append(msg)
                elif isinstance(msg.get("id"), int):
                    self._replies[msg["id"]] = msg
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def diagnostics(self) -> str:
        """The tail of the agent's stderr and PJSIP log, for assertion messages."""
        if self.alive:
            self._exchange("flush", 1.0, {})
        parts = []
        for label, path, size in (("stderr", self.stderr_file, 3000), ("pjsip log", self.log_file, 6000)):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            parts.append(f"--- {self.name} {label} ({path}) ---\n{text[-size:]}")
        fatal = [e for e in self._events if e["event"] == "fatal"]
        if fatal:
            parts.insert(0, f"fatal: {fatal[-1].get('error')}\n{fatal[-1].get('traceback', '')}")
        return "\n".join(parts)

    def close(self, graceful: bool = False, timeout: float = 5.0) -> None:
        """Stop the agent: ``quit`` (hang up and un-REGISTER first if ``graceful``), then kill."""
        if self._closed or self.proc is None:
            return
        self._closed = True
        proc = self.proc
        if proc.poll() is None:
            try:
                self._send({"id": 0, "cmd": "quit", "args": {"graceful": graceful}})
                assert proc.stdin is not None
                proc.stdin.close()
            except (OSError, ValueError):
                pass
        processes.stop(proc, [(None, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)])
        if self._reader is not None:
            self._reader.join(timeout=2)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> PjsuaAgent:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol --------------------------------------------------------------------------
    def _send(self, msg: Mapping[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, cmd: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
        """Send command ``cmd`` and return its result; raise :class:`PjsuaError` if it failed."""
        if not self.alive:
            raise PjsuaError(f"{self.name} is not running\n{self.diagnostics()}")
        reply = self._exchange(cmd, timeout, args)
        if reply is None:
            raise PjsuaError(f"{self.name}: no reply to {cmd} within {timeout}s\n{self.diagnostics()}")
        if not reply.get("ok"):
            raise PjsuaError(f"{self.name}: {cmd} failed: {reply.get('error')}")
        return dict(reply.get("result") or {})

    def _exchange(self, cmd: str, timeout: float, args: Mapping[str, Any]) -> Event | None:
        with self._cond:
            self._ids += 1
            cid = self._ids
        try:
            self._send({"id": cid, "cmd": cmd, "args": {k: _jsonable(v) for k, v in args.items()}})
        except (OSError, ValueError):
            return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while cid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    return None
                self._cond.wait(min(left, 0.2))
            return self._replies.pop(cid)

    def mark(self) -> int:
        """A position in the event stream: pass it as ``since`` to wait only for later events."""
        with self._cond:
            return len(self._events)

    def events(self, kind: str | None = None, **match: Any) -> list[Event]:
        """Every event received so far (consumed or not), of ``kind`` and fields ``match``."""
        with self._cond:
            return [e for e in self._events if _matches(e, kind, match, None)]

    def wait_event(
        self,
        kind: str,
        timeout: float = 5.0,
        where: Callable[[Event], bool] | None = None,
        since: int = 0,
        **match: Any,
    ) -> Event:
        """The first not yet consumed event of ``kind`` whose fields equal ``match`` (and that
        satisfies ``where``), from position ``since`` on (see :meth:`mark`), waiting up to
        ``timeout`` seconds; it is then consumed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(since, len(self._events)):
                    e = self._events[i]
                    if i not in self._consumed and _matches(e, kind, match, where):
                        self._consumed.add(i)
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None and not self._reader_alive()):
                    seen = [e for e in self._events if e["event"] != "log"][-15:]
                    raise PjsuaError(
                        f"{self.name}: no {kind} event matching {match} within {timeout}s; last events:\n"
                        + "\n".join(json.dumps(e) for e in seen)
                        + "\n"
                        + self.diagnostics()
                    )
                self._cond.wait(min(left, 0.2))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    # -- addresses -------------------------------------------------------------------------
    def address(self, transport: str = "udp") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.ports[transport]}"

    def uri(self, user: str | None = None, transport: str = "udp") -> str:
        """A SIP URI that reaches this agent (``user`` selects the account) over ``transport``."""
        userinfo = f"{user}@" if user else ""
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{userinfo}{self.address(transport)}{suffix}"

    # -- accounts --------------------------------------------------------------------------
    def add_account(
        self,
        id_uri: str,
        *,
        registrar: str | None = None,
        username: str | None = None,
        password: str = "",
        realm: str = "*",
        algorithm: str | None = None,
        transport: str = "udp",
        register: bool = True,
        reg_timeout: int = 300,
        auto_answer: int | None = None,
        answer_delay_ms: int = 0,
        srtp: str = "disabled",
        outbound: bool = False,
        rtp_port: int | None = None,
        proxy: str | None = None,
        headers: Mapping[str, str] | None = None,
        default: bool = False,
    ) -> str:
        """Create an account and return its handle. Without ``registrar`` it is a local account
        (no REGISTER) that still places and receives calls. With ``algorithm`` None PJSIP answers
        the first challenge it supports (MD5, SHA-256; of several, the first in the response);
        ``"md5"`` answers MD5 challenges only (an MD5 HA1 credential, so ``realm`` must be given).
        pjsua2 2.15.1 cannot restrict a credential to any other algorithm (see the agent)."""
        if rtp_port is None:
            rtp_port = ports.free_rtp_range(20, self.host)
        return str(
            self.request(
                "account_add",
                id_uri=id_uri,
                registrar=registrar,
                username=username,
                password=password,
                realm=realm,
                algorithm=algorithm,
                transport=transport,
                register=register,
                reg_timeout=reg_timeout,
                auto_answer=auto_answer,
                answer_delay_ms=answer_delay_ms,
                srtp=srtp,
                outbound=outbound,
                rtp_port=rtp_port,
                rtp_port_range=20,
                proxy=proxy,
                headers=dict(headers or {}),
                default=default,
            )["account"]
        )

    def wait_registered(self, account: str, timeout: float = 5.0) -> Event:
        """Wait for a ``reg_state`` of ``account``; raise unless it is 200 and active."""
        ev = self.wait_event("reg_state", timeout=timeout, account=account)
        if ev["code"] != 200 or not ev["active"]:
            raise PjsuaError(f"{self.name}: registration of {account} failed: {ev}\n{self.diagnostics()}")
        return ev

    def register(self, account: str, renew: bool = True) -> None:
        self.request("account_register", account=account, renew=renew)

    def set_auto_answer(self, account: str, code: int | None, delay_ms: int = 0) -> None:
        self.request("account_set", account=account, auto_answer=code, answer_delay_ms=delay_ms)

    # -- calls -----------------------------------------------------------------------------
    def make_call(self, account: str, uri: str, headers: Mapping[str, str] | None = None) -> str:
        return str(self.request("make_call", account=account, uri=uri, headers=dict(headers or {}))["call"])

    def wait_incoming(self, account: str | None = None, timeout: float = 5.0, since: int = 0) -> str:
        """Wait for an incoming call (to ``account`` if given) and return its handle."""

        def to_account(e: Event) -> bool:
            return account is None or e.get("account") == account

        return str(self.wait_event("incoming_call", timeout=timeout, where=to_account, since=since)["call"])

    def answer(self, call: str, code: int = 200) -> None:
        self.request("answer", call=call, code=code)

    def hangup(self, call: str, code: int | None = None) -> None:
        self.request("hangup", call=call, code=code)

    def wait_call_state(self, call: str, state: str, timeout: float = 5.0, since: int = 0) -> Event:
        """Wait until ``call`` reaches ``state`` (calling, early, connecting, confirmed,
        disconnected) and return that ``call_state`` event (``code``, ``reason``); raise if the
        call is disconnected first."""

        def reached(e: Event) -> bool:
            return e["state"] in (state, "disconnected")

        ev = self.wait_event("call_state", timeout=timeout, where=reached, since=since, call=call)
        if ev["state"] != state:
            raise PjsuaError(f"{self.name}: call {call} ended ({ev['code']} {ev['reason']}) before {state}")
        return ev

    def wait_media(self, call: str, status: str = "active", timeout: float = 5.0, since: int = 0) -> Event:
        """Wait for a ``call_media`` event of ``call`` with ``status`` (active, local_hold,
        remote_hold, none, error)."""
        return self.wait_event("call_media", timeout=timeout, since=since, call=call, status=status)

    def call_info(self, call: str) -> dict[str, Any]:
        return self.request("call_info", call=call)

    def call_stats(self, call: str) -> dict[str, Any]:
        return self.request("call_stats", call=call)

    def play(self, call: str, path: Path | str, loop: bool = False) -> None:
        self.request("play", call=call, path=str(path), loop=loop)

    def stop_play(self, call: str) -> None:
        self.request("stop_play", call=call)

    def record(self, call: str, path: Path | str) -> None:
        self.request("record", call=call, path=str(path))

    def stop_record(self, call: str, timeout: float = 5.0) -> Path:
        """Stop recording and return the finished WAV file."""
        self.request("stop_record", call=call)
        return Path(self.wait_event("record_done", timeout=timeout, call=call)["path"])

    def send_dtmf(self, call: str, digits: str, method: str = "rfc2833", duration_ms: int = 160) -> None:
        """Send ``digits`` as RFC 4733/2833 events (``rfc2833``) or SIP INFO (``info``)."""
        self.request("send_dtmf", call=call, digits=digits, method=method, duration_ms=duration_ms)

    def hold(self, call: str) -> None:
        self.request("hold", call=call)

    def unhold(self, call: str) -> None:
        self.request("unhold", call=call)

    def transfer(self, call: str, target: str) -> None:
        self.request("transfer", call=call, target=target)

    def transfer_replaces(self, call: str, other: str) -> None:
        self.request("transfer_replaces", call=call, other=other)

    # -- out-of-dialog requests ------------------------------------------------------------
    def send_message(self, account: str, to: str, body: str, content_type: str = "text/plain") -> None:
        """Send a MESSAGE; its outcome arrives as a ``message_status`` event."""
        self.request("send_message", account=account, to=to, body=body, content_type=content_type)

    def send_options(self, account: str, to: str, timeout: float = 5.0) -> Event:
        """Send OPTIONS to ``to`` and return the ``options_response`` event (``code``, ``reason``
        and the whole response as ``message``, for :func:`tests.peers.siplog.parse_message`)."""
        since = self.mark()
        self.request("send_options", account=account, to=to)
        return self.wait_event("options_response", timeout=timeout, since=since, account=account)

    # -- the SIP log -----------------------------------------------------------------------
    def sip_messages(self) -> list[SipMessage]:
        """Every SIP message this agent sent (``direction`` "sent") or received so far, from its
        PJSIP log (``log_level`` 4 or more)."""
        if self.alive:
            self._exchange("flush", 1.0, {})
        try:
            return siplog.parse_pjsip_log(self.log_file.read_text(errors="replace"))
        except FileNotFoundError:
            return []


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _matches(e: Event, kind: str | None, match: Mapping[str, Any], where: Callable[[Event], bool] | None) -> bool:
    if kind is not None and e.get("event") != kind:
        return False
    if any(e.get(k) != v for k, v in match.items()):
        return False
    return where is None or where(e)
