"""Run SIPp scenarios as subprocesses and read back their outcome.

``run_sipp(SippConfig(...), workdir)`` runs SIPp in the foreground until it exits (or a timeout
kills it) and returns a :class:`SippResult`. ``SippProcess`` runs one in the background -- a UAS
answering another peer -- and is a context manager that always kills it.

Every run gets its own files in ``workdir``: statistics CSV (``-trace_stat``), message log
(``-trace_msg``), error log (``-trace_err``), final screens (``-trace_screen``), plus SIPp's
stdout/stderr. SIPp's own exit codes (SIPp manual, "Exit codes"): 0 every call succeeded,
1 at least one failed, 97 exit on an internal command, 99 normal exit without any call processed,
255 (-1) fatal error, 254 (-2) fatal error binding a socket.

Built-in scenarios (``-sn``): uac, uas, regexp, branchc, branchs, 3pcc-*, uac_pcap. Ours live in
``scenarios/`` (:func:`scenario`); see ``docs/interop-peers.md`` for their ``-key`` parameters.
"""

from __future__ import annotations

import csv
import functools
import itertools
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.peers import availability, ports, processes
from tests.peers.siplog import SipMessage, read_sipp_message_log

SCENARIOS = Path(__file__).parent / "scenarios"

#: Where Debian's sip-tester package puts the RTP captures SIPp can replay (``play_pcap_audio``).
PCAP_DIR = Path("/usr/share/sip-tester")
#: 7 s of G.711 A-law (PT 8) speech, 236 packets.
G711A_PCAP = PCAP_DIR / "g711a.pcap"


def dtmf_pcap(digit: str) -> Path:
    """The RFC 2833 telephone-event capture SIPp ships for ``digit`` (0-9, ``*``, ``#``)."""
    name = {"*": "star", "#": "pound"}.get(digit, digit)
    return PCAP_DIR / f"dtmf_2833_{name}.pcap"


def scenario(name: str) -> Path:
    """The path of one of our scenario files, by file name with or without ``.xml``."""
    path = SCENARIOS / (name if name.endswith(".xml") else f"{name}.xml")
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


#: Values for double-brace placeholders in scenario files, unless a config gives its own.
DEFAULT_TEMPLATE = {"g711a_pcap": str(G711A_PCAP)}
_PLACEHOLDER = re.compile(r"\{\{([a-z0-9_]+)\}\}")


def render_scenario(source: Path, target: Path, values: Mapping[str, str]) -> Path:
    """Write ``source`` to ``target`` with each ``{{name}}`` replaced by ``values[name]``.

    SIPp's ``-key`` keywords are replaced when a message is sent, but SIPp reads some things when
    it loads a file (a response's status code, ``play_pcap_audio`` files): those are templated.
    """
    text = source.read_text()
    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise KeyError(f"{source.name} needs template values for {', '.join(missing)}")
    target.write_text(_PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text))
    return target


def sipp_executable() -> str:
    """The ``sipp`` binary, or fail (CI) / skip the calling test."""
    return availability.require_executable("sipp", "sipp")


@functools.cache
def sipp_features() -> frozenset[str]:
    """What this SIPp was built with, from its banner (``SIPp v3.6.1-SCTP-PCAP-RTPSTREAM``):
    a subset of TLS, SCTP, PCAP, RTPSTREAM. Debian 12's has no TLS."""
    out = subprocess.run([sipp_executable(), "-v"], capture_output=True, text=True, timeout=10).stdout
    banner = next((line for line in out.splitlines() if "SIPp v" in line), "")
    return frozenset(part.strip(".") for part in banner.strip().split("-")[1:] if part.isupper())


Transport = Literal["udp", "tcp", "tls"]
_TRANSPORT_FLAG = {"udp": "u1", "tcp": "t1", "tls": "l1"}
_run_ids = itertools.count(1)


@dataclass
class SippConfig:
    """One SIPp invocation. ``scenario`` is a built-in name (``"uac"``) or an XML file path."""

    scenario: str | Path
    #: host:port to send to (UAC); None for a UAS that only answers.
    target: str | None = None
    local_ip: str = ports.LOOPBACK
    #: Local SIP port; None picks a free one (see ``SippProcess.port``).
    local_port: int | None = None
    transport: Transport = "udp"
    #: Stop after this many calls (``-m``).
    calls: int | None = 1
    #: Calls per ``rate_period_ms`` (``-r`` / ``-rp``).
    rate: float | None = None
    rate_period_ms: int | None = None
    #: Maximum simultaneous calls (``-l``).
    limit: int | None = None
    #: ``-key name value``: ``[name]`` in the scenario is replaced by ``value``.
    keys: Mapping[str, str] = field(default_factory=dict)
    #: ``{{name}}`` placeholders in the scenario file (see :func:`render_scenario`).
    template: Mapping[str, str] = field(default_factory=dict)
    #: User part of the request URI (``-s``).
    service: str | None = None
    #: Credentials for ``[authentication]`` (``-au`` / ``-ap``).
    auth_user: str | None = None
    auth_password: str | None = None
    #: Local RTP port announced as ``[media_port]`` (``-mp``); None picks a free pair.
    media_port: int | None = None
    rtp_echo: bool = False
    #: Length of ``<pause/>`` without its own duration (``-d``), milliseconds.
    call_duration_ms: int | None = None
    #: SIPp's own global timeout (``-timeout`` with ``-timeout_error``), seconds.
    sipp_timeout_s: float | None = None
    #: Default receive timeout for every ``<recv>`` (``-recv_timeout``), milliseconds.
    recv_timeout_ms: int | None = None
    #: Certificate and key for TLS (``-tls_cert`` / ``-tls_key``), see :mod:`tests.peers.tls`.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trace_msg: bool = True
    trace_err: bool = True
    extra_args: Sequence[str] = ()

    @property
    def is_file(self) -> bool:
        return isinstance(self.scenario, Path) or str(self.scenario).endswith(".xml")

    def argv(self, files: SippFiles, local_port: int, media_port: int, control_port: int) -> list[str]:
        args = [sipp_executable()]
        if self.is_file:
            source = Path(self.scenario)
            target = files.directory / f"{files.stats.stem.removesuffix('_stats')}_{source.name}"
            rendered = render_scenario(source, target, {**DEFAULT_TEMPLATE, **self.template})
            args += ["-sf", str(rendered)]
        else:
            args += ["-sn", str(self.scenario)]
        if self.target:
            args.append(self.target)
        args += ["-i", self.local_ip, "-p", str(local_port), "-t", _TRANSPORT_FLAG[self.transport]]
        args += ["-mi", self.local_ip, "-mp", str(media_port)]
        # One UDP control socket per SIPp process, 8888 by default: several SIPps would collide.
        args += ["-ci", self.local_ip, "-cp", str(control_port), "-nostdin"]
        if self.calls is not None:
            args += ["-m", str(self.calls)]
        if self.rate is not None:
            args += ["-r", f"{self.rate:g}"]
        if self.rate_period_ms is not None:
            args += ["-rp", f"{self.rate_period_ms}ms"]
        if self.limit is not None:
            args += ["-l", str(self.limit)]
        for name, value in self.keys.items():
            args += ["-key", name, str(value)]
        if self.service is not None:
            args += ["-s", self.service]
        if self.auth_user is not None:
            args += ["-au", self.auth_user]
        if self.auth_password is not None:
            args += ["-ap", self.auth_password]
        if self.rtp_echo:
            args.append("-rtp_echo")
        if self.call_duration_ms is not None:
            args += ["-d", str(self.call_duration_ms)]
        if self.sipp_timeout_s is not None:
            args += ["-timeout", f"{self.sipp_timeout_s:g}s", "-timeout_error"]
        if self.recv_timeout_ms is not None:
            args += ["-recv_timeout", f"{self.recv_timeout_ms}ms"]
        if self.transport == "tls" and self.tls_cert is not None:
            args += ["-tls_cert", str(self.tls_cert)]
        if self.transport == "tls" and self.tls_key is not None:
            args += ["-tls_key", str(self.tls_key)]
        args += ["-trace_stat", "-stf", str(files.stats), "-fd", "1"]
        args += ["-trace_screen", "-screen_file", str(files.screen)]
        if self.trace_msg:
            args += ["-trace_msg", "-message_file", str(files.messages)]
        if self.trace_err:
            args += ["-trace_err", "-error_file", str(files.errors)]
        args += ["-trace_logs", "-log_file", str(files.logs)]
        args += list(self.extra_args)
        return args


@dataclass(frozen=True)
class SippFiles:
    """The files of one SIPp run, all under one directory."""

    directory: Path
    stats: Path
    messages: Path
    errors: Path
    screen: Path
    logs: Path
    stdout: Path
    stderr: Path

    @classmethod
    def under(cls, directory: Path, name: str) -> SippFiles:
        directory.mkdir(parents=True, exist_ok=True)
        return cls(
            directory=directory,
            stats=directory / f"{name}_stats.csv",
            messages=directory / f"{name}_messages.log",
            errors=directory / f"{name}_errors.log",
            screen=directory / f"{name}_screen.log",
            logs=directory / f"{name}_actions.log",
            stdout=directory / f"{name}.stdout",
            stderr=directory / f"{name}.stderr",
        )


EXIT_CODES = {
    0: "all calls successful",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "normal exit without calls processed",
    255: "fatal error",
    254: "fatal error binding a socket",
    -9: "killed (SIGKILL)",
    -15: "terminated (SIGTERM)",
}


def _read(path: Path, limit: int = 20000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text if len(text) <= limit else "..." + text[-limit:]


def parse_stats(path: Path) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` CSV, by column name; {} if there is none yet."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return {}
    if len(lines) < 2:
        return {}
    header, last = next(csv.reader([lines[0]], delimiter=";")), next(csv.reader([lines[-1]], delimiter=";"))
    return {k: v for k, v in zip(header, last, strict=False) if k}


def _count(stats: Mapping[str, str], column: str) -> int:
    try:
        return int(float(stats.get(column, "0") or 0))
    except ValueError:
        return 0


@dataclass(frozen=True)
class SippResult:
    """How a SIPp run ended: exit code, cumulative counters and where its logs are."""

    returncode: int
    timed_out: bool
    stats: dict[str, str]
    files: SippFiles
    argv: list[str]

    @property
    def successful(self) -> int:
        return _count(self.stats, "SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return _count(self.stats, "FailedCall(C)")

    @property
    def created(self) -> int:
        return _count(self.stats, "TotalCallCreated")

    @property
    def ok(self) -> bool:
        """Exit code 0, nothing failed and at least one call succeeded."""
        return self.returncode == 0 and not self.timed_out and self.failed == 0 and self.successful > 0

    @property
    def messages(self) -> list[SipMessage]:
        """The SIP messages SIPp sent and received (needs ``trace_msg``)."""
        return read_sipp_message_log(self.files.messages)

    def received(self, method: str | None = None) -> list[SipMessage]:
        """Received messages, requests of ``method`` only if given."""
        return [
            m
            for m in self.messages
            if m.direction == "received" and (method is None or (m.is_request and m.method == method))
        ]

    def credentials(self, method: str) -> list[str]:
        """The ``Authorization`` / ``Proxy-Authorization`` values of received ``method`` requests."""
        return [
            value
            for m in self.received(method)
            for value in (m.header("Authorization"), m.header("Proxy-Authorization"))
            if value
        ]

    @property
    def error_log(self) -> str:
        return _read(self.files.errors)

    @property
    def screen(self) -> str:
        return _read(self.files.screen) or _read(self.files.stdout)

    def describe(self) -> str:
        """A report for assertion messages: exit code, counters, errors and the final screen."""
        meaning = EXIT_CODES.get(self.returncode, "?")
        parts = [
            f"sipp exit {self.returncode} ({meaning}){' after timeout' if self.timed_out else ''}: "
            f"{self.successful} successful, {self.failed} failed, {self.created} created",
            "argv: " + " ".join(self.argv),
        ]
        if err := _read(self.files.stderr, 4000).strip():
            parts.append("stderr:\n" + err)
        if errors := _read(self.files.errors, 4000).strip():
            parts.append("error log:\n" + errors)
        if screen := _read(self.files.screen, 6000).strip():
            parts.append("screen:\n" + screen)
        parts.append(f"files in {self.files.directory}")
        return "\n".join(parts)


def _udp_bound(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def _tcp_listening(port: int, host: str) -> bool:
    """The port is in LISTEN state. A bind that collides only proves SIPp bound it: between its
    bind() and listen() a connection is refused, and a trunk registration refused so waits its
    5 s retry (the likely cause of one failure in a loaded run). `host` is not needed: the port
    was picked free for this SIPp."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: TCP_LISTEN
                return True
    return False


class SippProcess:
    """A SIPp run in the background. Use as a context manager; leaving it always kills SIPp.

    ``port`` is the SIP port it listens on, ``media_port`` the RTP port it announces. ``start()``
    returns once the SIP socket is bound (or raises with SIPp's report if SIPp died first).
    """

    def __init__(self, config: SippConfig, workdir: Path, name: str | None = None) -> None:
        if config.transport == "tls" and "TLS" not in sipp_features():
            raise RuntimeError("this SIPp was built without OpenSSL: no TLS transport (Debian's sip-tester is)")
        self.config = config
        self.name = name or f"sipp{next(_run_ids)}"
        self.files = SippFiles.under(Path(workdir), self.name)
        self.port = config.local_port or ports.free_sip_port(config.local_ip)
        self.media_port = config.media_port or ports.free_rtp_range(4, config.local_ip)
        self.control_port = ports.free_udp_port(config.local_ip)
        self._picked = [self.control_port]
        self._picked += [] if config.local_port else [self.port]
        self._picked += [] if config.media_port else list(range(self.media_port, self.media_port + 4))
        self.argv = config.argv(self.files, self.port, self.media_port, self.control_port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.timed_out = False
        self._result: SippResult | None = None

    @property
    def address(self) -> str:
        """``host:port`` of its SIP socket, as a SIPp target or a URI host part."""
        host = f"[{self.config.local_ip}]" if ":" in self.config.local_ip else self.config.local_ip
        return f"{host}:{self.port}"

    def uri(self, user: str | None = None) -> str:
        """A SIP URI reaching this SIPp over its transport."""
        userinfo = f"{user}@" if user else ""
        transport = "" if self.config.transport == "udp" else f";transport={self.config.transport}"
        scheme = "sip"
        return f"{scheme}:{userinfo}{self.address}{transport}"

    def start(self, ready_timeout: float = 5.0) -> SippProcess:
        with self.files.stdout.open("wb") as out, self.files.stderr.open("wb") as err:
            self.proc = processes.spawn(
                self.argv, cwd=self.files.directory, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        if self.config.target is None:
            self._wait_bound(ready_timeout)
        return self

    def _wait_bound(self, timeout: float) -> None:
        assert self.proc is not None
        host = self.config.local_ip
        check = _udp_bound if self.config.transport == "udp" else _tcp_listening
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("SIPp exited before it was ready\n" + self._collect().describe())
            if check(self.port, host):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"SIPp did not bind {self.address} within {timeout}s\n" + self._collect().describe())

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> SippResult:
        """Wait for SIPp to finish by itself (its ``-m`` calls done); kill it after ``timeout``."""
        assert self.proc is not None, "not started"
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.stop()
        return self._collect()

    def stop(self, grace: float = 2.0) -> SippResult:
        """End SIPp: SIGUSR1 (finish the running calls, place no more), then SIGTERM, then SIGKILL."""
        if self.proc is not None:
            processes.stop(self.proc, [(signal.SIGUSR1, grace), (signal.SIGTERM, grace)])
        return self._collect()

    def kill(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, [(signal.SIGKILL, 5.0)])

    def _collect(self) -> SippResult:
        assert self.proc is not None
        code = self.proc.poll()
        self._result = SippResult(
            returncode=code if code is not None else -1,
            timed_out=self.timed_out,
            stats=parse_stats(self.files.stats),
            files=self.files,
            argv=self.argv,
        )
        return self._result

    @property
    def result(self) -> SippResult | None:
        """The result once SIPp has been waited for or stopped."""
        return self._result

    def __enter__(self) -> SippProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        ports.release(*self._picked)


def run_sipp(config: SippConfig, workdir: Path, timeout: float = 30.0, name: str | None = None) -> SippResult:
    """Run SIPp in the foreground until it exits; after ``timeout`` seconds it is stopped.

    A UAC (``target`` set) starts sending at once; a UAS waits for ``config.calls`` calls.
    """
    proc = SippProcess(config, workdir, name)
    with proc:
        return proc.wait(timeout)
