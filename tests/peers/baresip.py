"""baresip for tests: a private config directory, driven over the ``ctrl_tcp`` module.

    with Baresip(tmp_path, audio_file=tone_wav) as bs:
        bs.add_account("sip:alice@127.0.0.1:5060", password="secret")  # registers with the AOR host
        bs.wait_registered("sip:alice@127.0.0.1:5060")
        bs.dial("sip:bob@127.0.0.1:5060")
        bs.wait_event("CALL_ESTABLISHED")
        bs.send_dtmf("123")
        bs.hangup()

    with Baresip(tmp_path, contacts=["sip:bob@127.0.0.1:5060"]) as bs:   # MESSAGE needs a contact
        bs.add_account("sip:alice@127.0.0.1:5060", password="secret")
        assert bs.send_message("sip:bob@127.0.0.1:5060", "hi").response.status == 200
        assert bs.wait_message().request.body == "hi back"

Each instance writes ``config``/``accounts`` into ``<workdir>/<name>/`` and starts
``baresip -f <that dir>``; nothing reads ``~/.baresip``. Audio needs no sound card: the source is
``aufile`` (a WAV file played into every call) or a 440 Hz ``ausine`` tone, the player is
``aubridge`` (discards what it gets unless another device reads it), and with ``record=True`` the
``sndfile`` filter writes each call's audio to ``dump-*-dec.wav`` (received) and
``dump-*-enc.wav`` (sent) in the instance directory.

Control: ``ctrl_tcp`` listens on a free loopback port and speaks netstrings of JSON. A command is
``{"command": "dial", "params": "sip:...", "token": "7"}`` and gets ``{"response": true, "ok": ...,
"data": "...", "token": "7"}``; events are ``{"event": true, "type": "CALL_ESTABLISHED", "class":
"call", "accountaor": ..., "peeruri": ..., "id": ..., "param": ...}``. The commands are baresip's
long menu commands (``help`` lists them): ``dial``, ``accept``, ``hangup``, ``hold``, ``resume``,
``sndcode`` (DTMF), ``transfer``, ``uanew``, ``reginfo``, ``listcalls``, ``options``, ``message``,
``contact_next``, ``quit`` ...

MESSAGE and OPTIONS: baresip 1.0 reports neither over ctrl_tcp (no event for a received MESSAGE --
that came in 1.1 -- and a request's answer goes only to its log, or nowhere for a 2xx MESSAGE). So
baresip runs with its SIP trace (``-s``, line-buffered into ``baresip.log``) and the helpers read
the answers and the received requests from it (:meth:`Baresip.sip_messages`). ``message <text>``
(module ``contact``) sends to the *current contact*: the URIs a test wants to message are given as
``contacts`` and :meth:`Baresip.send_message` selects one before sending.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.peers import availability, ports, processes, siplog
from tests.peers.siplog import SipMessage

Event = dict[str, Any]

#: Modules of Debian's baresip 1.0 used here; all ship in the baresip-core package.
BASE_MODULES = ("g711.so", "aufile.so", "aubridge.so", "ausine.so", "contact.so", "ctrl_tcp.so")
#: Statuses after which libre answers the challenge and sends the request again.
_CHALLENGES = (401, 407)


@dataclass(frozen=True)
class Exchange:
    """A non-INVITE request and its final response, as baresip's SIP trace shows them."""

    request: SipMessage
    response: SipMessage


class BaresipError(RuntimeError):
    """baresip refused a command, died, or did not answer in time."""


def baresip_executable() -> str:
    """The ``baresip`` binary, or fail (CI) / skip the calling test."""
    return availability.require_executable("baresip", "baresip")


def _free_sip_port_pair(host: str) -> int:
    """A SIP port free on UDP and TCP whose next port is free on TCP (baresip's TLS port)."""
    for _ in range(50):
        port = ports.free_sip_port(host)
        if port < 65535 and ports.tcp_port_is_free(port + 1, host) and ports.claim(port + 1):
            return port
        ports.release(port)
    raise RuntimeError("no SIP port with a free TLS port next to it")


def account_line(
    aor: str,
    *,
    password: str | None = None,
    auth_user: str | None = None,
    register: bool = True,
    regint: int = 600,
    answermode: str = "manual",
    outbound: str | None = None,
    mediaenc: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """One line of baresip's ``accounts`` file, e.g. for ``sip:alice@127.0.0.1:5060;transport=tcp``.

    baresip registers with the AOR's host unless ``register`` is False (``regint=0``);
    ``outbound`` sends everything via that proxy URI. ``answermode`` is manual, early or auto.
    ``mediaenc`` is srtp, srtp-mand, srtp-mandf or dtls_srtp (load ``srtp.so`` / ``dtls_srtp.so``
    with ``extra_modules``).
    """
    params: dict[str, str] = {"answermode": answermode, "regint": str(regint if register else 0)}
    if password is not None:
        params["auth_pass"] = password
    if auth_user is not None:
        params["auth_user"] = auth_user
    if outbound is not None:
        params["outbound"] = f'"{outbound}"'
    if mediaenc is not None:
        params["mediaenc"] = mediaenc
    params.update(extra or {})
    return f"<{aor}>" + "".join(f";{k}={v}" for k, v in params.items())


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    """One baresip process. A context manager; leaving it always stops the process.

    ``sip_port`` is the local SIP port for UDP and TCP; baresip also listens for TLS on
    ``sip_port + 1`` (``tls_port``); to accept TLS it needs ``tls_combined_pem`` (certificate and
    key in one file, :mod:`tests.peers.tls`), as a TLS client it needs nothing. ``audio_file``
    is a 16-bit WAV played into calls (None: a 440 Hz tone from ``ausine``). ``extra_config``
    lines are appended to the config file; ``accounts`` lines (:func:`account_line`) are the
    ``accounts`` file, registered at start-up -- or add accounts later with :meth:`add_account`.
    ``contacts`` are the URIs :meth:`send_message` may send to (baresip 1.0 reads them at start
    only). ``sip_trace`` runs ``baresip -s``, which the MESSAGE and OPTIONS helpers read.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        name: str = "baresip",
        host: str = ports.LOOPBACK,
        sip_port: int | None = None,
        tls_combined_pem: Path | None = None,
        audio_file: Path | None = None,
        record: bool = False,
        extra_modules: Sequence[str] = (),
        extra_config: Sequence[str] = (),
        accounts: Sequence[str] = (),
        contacts: Sequence[str] = (),
        sip_trace: bool = True,
        start_timeout: float = 10.0,
    ) -> None:
        self.exe = baresip_executable()
        self.name = name
        self.host = host
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sip_port = sip_port or _free_sip_port_pair(host)
        #: baresip 1.0 always listens for TLS too, on the SIP port + 1.
        self.tls_port = self.sip_port + 1
        self.tls_combined_pem = tls_combined_pem
        self.ctrl_port = ports.free_tcp_port(host)
        self.rtp_base = ports.free_rtp_range(20, host)
        self.audio_file = audio_file
        self.record = record
        self.extra_modules = list(extra_modules)
        self.extra_config = list(extra_config)
        self.accounts = list(accounts)
        self.contacts = list(contacts)
        self.sip_trace = sip_trace
        self._current_contact = 0  # baresip starts with the first contact of the file
        self.start_timeout = start_timeout
        self.log_file = self.dir / "baresip.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.version = ""
        self._sock: socket.socket | None = None
        self._events: list[Event] = []
        self._consumed: set[int] = set()
        self._replies: dict[str, Event] = {}
        self._cond = threading.Condition()
        self._tokens = 0
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._closed = False

    # -- files -----------------------------------------------------------------------------
    def config_text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.audio_file is not None:
            # aufile insists that the file's rate and channels are the source's: say so.
            with wave.open(str(self.audio_file), "rb") as w:
                srate, channels = w.getframerate(), w.getnchannels()
            source = f"aufile,{self.audio_file}"
        else:
            srate, channels = 48000, 2  # ausine's only format
            source = "ausine,440"
        lines = [
            "poll_method\t\tepoll",
            f"sip_listen\t\t{host}:{self.sip_port}",
            # Without this baresip announces the host's first interface in Contact and SDP.
            f"net_interface\t\t{self.host}",
            f"audio_player\t\taubridge,{self.name}-out",
            f"audio_source\t\t{source}",
            f"audio_alert\t\taubridge,{self.name}-alert",
            "audio_path\t\t/usr/share/baresip",
            f"ausrc_srate\t\t{srate}",
            f"ausrc_channels\t\t{channels}",
            f"rtp_ports\t\t{self.rtp_base}-{self.rtp_base + 19}",
            "rtcp_mux\t\tno",
            "jitter_buffer_delay\t1-10",
            "call_local_timeout\t120",
            "call_max_calls\t\t4",
            "module_path\t\t/usr/lib/baresip/modules",
            *(f"module\t\t\t{m}" for m in (*BASE_MODULES, *self.extra_modules)),
            "module_tmp\t\tuuid.so",
            "module_tmp\t\taccount.so",
            "module_app\t\tmenu.so",
            f"ctrl_tcp_listen\t\t{host}:{self.ctrl_port}",
        ]
        if self.record:
            lines += ["module\t\t\tsndfile.so", f"snd_path\t\t{self.dir}"]
        if self.tls_combined_pem is not None:
            lines.append(f"sip_certificate\t\t{self.tls_combined_pem}")
        lines += self.extra_config
        return "\n".join(lines) + "\n"

    # -- process ---------------------------------------------------------------------------
    def start(self) -> Baresip:
        (self.dir / "config").write_text(self.config_text())
        (self.dir / "accounts").write_text("".join(f"{line}\n" for line in self.accounts))
        # Angle brackets keep URI parameters (;transport=tcp) in the URI, not the address.
        (self.dir / "contacts").write_text("".join(f"<{uri}>\n" for uri in self.contacts))
        (self.dir / "current_contact").unlink(missing_ok=True)  # else a re-used directory's wins
        # stdbuf: baresip's stdout (log and SIP trace) is a file here, block-buffered otherwise.
        argv = [self.exe, *(["-s"] if self.sip_trace else []), "-f", str(self.dir)]
        stdbuf = shutil.which("stdbuf")
        with self.log_file.open("wb") as log:
            self.proc = processes.spawn(
                [stdbuf, "-oL", *argv] if stdbuf else argv,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BaresipError(f"{self.name} exited with {self.proc.returncode}\n{self.diagnostics()}")
            try:
                self._sock = socket.create_connection((self.host, self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(f"{self.name}: ctrl_tcp not listening\n{self.diagnostics()}") from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, name=f"{self.name}-ctrl", daemon=True)
        self._reader.start()
        about = self.command("about").get("data", "")
        self.version = next((w for w in str(about).split() if w[:1].isdigit()), "")

    def _read(self) -> None:
        assert self._sock is not None
        buf = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon <= 0 or not buf[:colon].isdigit():
                    break
                size = int(buf[:colon])
                if len(buf) < colon + 1 + size + 1:
                    break
                payload, buf = buf[colon + 1 : colon + 1 + size], buf[colon + 2 + size :]
                try:
                    msg = json.loads(payload)
                except json.JSONDecodeError:
                    continue
                with self._cond:
                    if msg.get("event"):
                        msg["t"] = round(time.monotonic(), 3)
                        self._events.append(msg)
                    elif msg.get("response"):
                        self._replies[str(msg.get("token"))] = msg
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def diagnostics(self) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        return f"--- {self.name} output ({self.log_file}) ---\n{text[-6000:]}"

    def close(self, graceful: bool = False, timeout: float = 3.0) -> None:
        """Stop baresip. It un-REGISTERs on ``quit`` and waits for the answer; unless ``graceful``
        it gets 0.5 s for that, then SIGTERM twice (baresip's second signal exits at once), then
        SIGKILL. Hang calls up first: a recording is finished when its call ends."""
        if self._closed or self.proc is None:
            return
        self._closed = True
        proc = self.proc
        if proc.poll() is None and self._sock is not None:
            try:
                self._send("quit", None, "quit")
            except OSError:
                pass
        wait = timeout if graceful else 0.5
        processes.stop(proc, [(None, wait), (signal.SIGTERM, 0.3), (signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)])
        if self._sock is not None:
            self._sock.close()
        if self._reader is not None:
            self._reader.join(timeout=2)
        ports.release(self.sip_port, self.tls_port, self.ctrl_port, *range(self.rtp_base, self.rtp_base + 20))

    def __enter__(self) -> Baresip:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol --------------------------------------------------------------------------
    def _send(self, command: str, params: str | None, token: str) -> None:
        msg: dict[str, str] = {"command": command, "token": token}
        if params is not None:
            msg["params"] = params
        assert self._sock is not None
        with self._send_lock:
            self._sock.sendall(_netstring(json.dumps(msg).encode()))

    def command(self, command: str, params: str | None = None, timeout: float = 5.0) -> Event:
        """Run a long menu command (``dial``, ``hangup`` ...) and return its response; raise
        :class:`BaresipError` if baresip says it failed."""
        if not self.alive:
            raise BaresipError(f"{self.name} is not running\n{self.diagnostics()}")
        with self._cond:
            self._tokens += 1
            token = str(self._tokens)
        self._send(command, params, token)
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    raise BaresipError(f"{self.name}: no response to {command} in {timeout}s\n{self.diagnostics()}")
                self._cond.wait(min(left, 0.2))
            reply = self._replies.pop(token)
        if not reply.get("ok"):
            raise BaresipError(f"{self.name}: {command} {params or ''} failed: {reply.get('data')}")
        return reply

    def mark(self) -> int:
        """A position in the event stream, for ``wait_event(since=...)``."""
        with self._cond:
            return len(self._events)

    def events(self, kind: str | None = None) -> list[Event]:
        with self._cond:
            return [e for e in self._events if kind is None or e.get("type") == kind]

    def wait_event(
        self,
        kind: str | Sequence[str],
        timeout: float = 5.0,
        where: Callable[[Event], bool] | None = None,
        since: int = 0,
        **match: Any,
    ) -> Event:
        """The first not yet consumed event whose ``type`` is ``kind`` (or one of several) and
        whose fields equal ``match``, from position ``since`` on; it is then consumed."""
        kinds = {kind} if isinstance(kind, str) else set(kind)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(since, len(self._events)):
                    e = self._events[i]
                    if (
                        i not in self._consumed
                        and e.get("type") in kinds
                        and all(e.get(k) == v for k, v in match.items())
                        and (where is None or where(e))
                    ):
                        self._consumed.add(i)
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    seen = "\n".join(json.dumps(e) for e in self._events[-15:])
                    raise BaresipError(
                        f"{self.name}: no {sorted(kinds)} event {match} within {timeout}s; last events:\n{seen}\n"
                        + self.diagnostics()
                    )
                self._cond.wait(min(left, 0.2))

    # -- conveniences ----------------------------------------------------------------------
    def address(self, transport: str = "udp") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = self.tls_port if transport == "tls" else self.sip_port
        return f"{host}:{port}"

    def uri(self, user: str, transport: str = "udp") -> str:
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{user}@{self.address(transport)}{suffix}"

    def add_account(
        self,
        aor: str,
        *,
        password: str | None = None,
        auth_user: str | None = None,
        register: bool = True,
        regint: int = 600,
        answermode: str = "manual",
        outbound: str | None = None,
        mediaenc: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        """Add a user agent at run time (``uanew``); the arguments are :func:`account_line`'s."""
        line = account_line(
            aor,
            password=password,
            auth_user=auth_user,
            register=register,
            regint=regint,
            answermode=answermode,
            outbound=outbound,
            mediaenc=mediaenc,
            extra=extra,
        )
        self.command("uanew", line)
        return aor

    def registration(self, aor: str) -> str | None:
        """The registration status ``reginfo`` shows for ``aor`` ("OK", "ERR", "zzz" ...), or None."""
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(self.command("reginfo").get("data", "")))
        for line in text.splitlines():
            fields = line.lstrip("> ").split()
            if len(fields) >= 2 and fields[0] == aor.split(";")[0]:
                return fields[1]
        return None

    def wait_registered(self, aor: str, timeout: float = 5.0) -> None:
        """Wait until ``aor`` is registered; raise on ``REGISTER_FAIL`` or timeout.

        Works for accounts of the ``accounts`` file too, which may register before this helper
        is connected to ctrl_tcp (baresip only sends events to connected clients): it polls
        ``reginfo`` besides watching for the events.
        """
        base = aor.split(";")[0]
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events():
                if e.get("accountaor") == base and e.get("type") == "REGISTER_FAIL":
                    raise BaresipError(f"{self.name}: registration of {base} failed: {e.get('param')}")
            if self.registration(base) == "OK":
                return
            if time.monotonic() > deadline:
                raise BaresipError(f"{self.name}: {base} not registered within {timeout}s\n{self.diagnostics()}")
            time.sleep(0.1)

    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def accept(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        self.command("hangup")

    def hold(self) -> None:
        self.command("hold")

    def resume(self) -> None:
        self.command("resume")

    def send_dtmf(self, digits: str) -> None:
        """Send ``digits`` as RFC 4733 telephone-events (baresip 1.0 has no SIP INFO sending)."""
        for digit in digits:
            self.command("sndcode", digit)

    def transfer(self, uri: str) -> None:
        self.command("transfer", uri)

    def recordings(self) -> list[Path]:
        """WAV files the ``sndfile`` filter wrote (``*-dec.wav``: what calls received)."""
        return sorted(self.dir.glob("dump-*-dec.wav"))

    # -- MESSAGE and OPTIONS (read back from the SIP trace) --------------------------------
    def own_addresses(self) -> set[str]:
        """The host:port values baresip puts in its Via (its UDP/TCP and TLS listeners)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return {f"{host}:{self.sip_port}", f"{host}:{self.tls_port}"}

    def sip_messages(self) -> list[SipMessage]:
        """Every SIP message baresip sent or received so far, from its ``-s`` trace."""
        if not self.sip_trace:
            raise BaresipError(f"{self.name}: started without sip_trace")
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return siplog.parse_baresip_trace(text, self.own_addresses())

    def sip_mark(self) -> int:
        """A position in the SIP trace, for ``since=`` of :meth:`wait_message` and the senders."""
        return len(self.sip_messages())

    def select_contact(self, uri: str) -> None:
        """Make ``uri`` (one of ``contacts``) the current contact, which ``message`` sends to."""
        try:
            wanted = self.contacts.index(uri)
        except ValueError:
            raise BaresipError(f"{self.name}: {uri} is not among the contacts {self.contacts}") from None
        while self._current_contact != wanted:
            step = 1 if wanted > self._current_contact else -1
            reply = self.command("contact_next" if step > 0 else "contact_prev")
            self._current_contact += step
            if self.contacts[self._current_contact] not in str(reply.get("data", "")):
                raise BaresipError(f"{self.name}: expected contact {self.contacts[self._current_contact]}: {reply}")

    def send_message(self, uri: str, text: str, timeout: float = 5.0, account: str | None = None) -> Exchange:
        """Send MESSAGE ``text`` (text/plain) to ``uri`` (one of ``contacts``) from the current user
        agent (or ``account``'s: ``uafind``) and return it with its final response.

        ``uri`` is the Request-URI without its parameters: baresip 1.0's ``message_send`` parses
        the contact as a bare address, so ``;transport=`` is dropped; route through a proxy with
        the account's ``outbound`` to choose the transport."""
        if account is not None:
            self.command("uafind", account)
        self.select_contact(uri)
        since = self.sip_mark()
        self.command("message", text)
        return self._exchange("MESSAGE", since, timeout, lambda m: m.body == text)

    def send_options(self, uri: str, timeout: float = 5.0, account: str | None = None) -> Exchange:
        """Send OPTIONS to ``uri`` (the ``options`` command) and return it with its final response."""
        if account is not None:
            self.command("uafind", account)
        since = self.sip_mark()
        self.command("options", uri)
        return self._exchange("OPTIONS", since, timeout, lambda m: True)

    def _exchange(
        self, method: str, since: int, timeout: float, which: Callable[[SipMessage], bool], settle: float = 1.0
    ) -> Exchange:
        """The request baresip sent after ``since`` and its final response. A 401/407 is final
        only if no re-sent request (same Call-ID, next CSeq) follows within ``settle`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.sip_messages()[since:]
            sent = [m for m in messages if m.is_request and m.direction == "sent" and m.method == method]
            first = next((m for m in sent if which(m)), None)
            if first is not None:
                tries = [m for m in sent if m.call_id == first.call_id]
                last = tries[-1]
                answers = [
                    m
                    for m in messages
                    if not m.is_request
                    and m.direction == "received"
                    and m.call_id == last.call_id
                    and m.cseq == last.cseq
                    and (m.status or 0) >= 200
                ]
                if answers:
                    final = answers[-1]
                    if final.status not in _CHALLENGES or time.monotonic() > deadline:
                        return Exchange(last, final)
                    settle_until = time.monotonic() + settle
                    while time.monotonic() < min(settle_until, deadline):
                        time.sleep(0.05)
                        if any(
                            m.is_request and m.call_id == last.call_id and m.cseq > last.cseq
                            for m in self.sip_messages()[since:]
                        ):
                            break
                    else:
                        return Exchange(last, final)
                    continue
            if time.monotonic() > deadline or not self.alive:
                raise BaresipError(
                    f"{self.name}: no final response to {method} within {timeout}s\n{self.diagnostics()}"
                )
            time.sleep(0.05)

    def wait_message(
        self, timeout: float = 5.0, since: int = 0, where: Callable[[SipMessage], bool] | None = None
    ) -> Exchange:
        """The first MESSAGE baresip received after trace position ``since`` (that satisfies
        ``where``) with baresip's final answer to it. baresip answers 200 only after its
        message listener (module ``menu``) took the text (src/message.c), 415 for non-text."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.sip_messages()[since:]
            for request in messages:
                if not (request.is_request and request.method == "MESSAGE" and request.direction == "received"):
                    continue
                if where is not None and not where(request):
                    continue
                for answer in messages:
                    if (
                        not answer.is_request
                        and answer.direction == "sent"
                        and answer.call_id == request.call_id
                        and answer.cseq == request.cseq
                        and (answer.status or 0) >= 200
                    ):
                        return Exchange(request, answer)
            if time.monotonic() > deadline or not self.alive:
                raise BaresipError(f"{self.name}: no MESSAGE received within {timeout}s\n{self.diagnostics()}")
            time.sleep(0.05)
