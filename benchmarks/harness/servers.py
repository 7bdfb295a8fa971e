"""The servers under test as processes: started pinned to a core, in their own session (so their
CPU can be summed from /proc), checked ready over SIP, stopped. Voxswitch runs as `voxswitch serve`;
Kamailio from a config template in the benchmark's folder."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from tests.peers import ports, processes

from benchmarks.harness.proc import TICKS, session_cpu_ticks, session_pids

LOOPBACK = "127.0.0.1"
KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
VENV_BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(message, flush=True)


def sip_options_ping(port: int, timeout: float = 0.3) -> bool:
    """Send one OPTIONS over UDP to 127.0.0.1:port; True when a 200 comes back."""
    return sip_options_status(port, timeout) == 200


def sip_options_status(port: int, timeout: float = 0.3) -> int | None:
    """Send one OPTIONS over UDP to 127.0.0.1:port; the answer's status, None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        s.settimeout(timeout)
        local = s.getsockname()[1]
        branch = "z9hG4bK" + uuid.uuid4().hex
        msg = (
            f"OPTIONS sip:ping@{LOOPBACK}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{local};branch={branch}\r\n"
            f"From: <sip:bench@{LOOPBACK}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <sip:ping@{LOOPBACK}:{port}>\r\n"
            f"Call-ID: {uuid.uuid4().hex}@bench\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        s.sendto(msg.encode(), (LOOPBACK, port))
        try:
            data, _ = s.recvfrom(65535)
        except TimeoutError:
            return None
        parts = data.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[0] == b"SIP/2.0" and parts[1].isdigit() else None


def exit_on_sigterm() -> None:
    """SIGTERM unwinds a runner like Ctrl-C does, so its servers are stopped and its work dir removed."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def missing_tools(tools: Sequence[str]) -> str | None:
    """A line saying which tool is not installed (and its Debian package), or None."""
    packages = {"sipp": "sip-tester", "taskset": "util-linux"}
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y {packages.get(tool, tool)})"
    return None


def wait_until(check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{what}: the process exited")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready within {timeout:.0f}s")


class Server:
    """One server process (and whatever it forks) in its own session, optionally pinned."""

    name = ""

    def __init__(self, workdir: Path, cpu: str | None) -> None:
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cpu = cpu
        #: SCHED_FIFO priority to run at (chrt), or None for the default scheduler. On a shared
        #: machine it keeps other work from taking the server's core while the server has work.
        self.realtime: int | None = None
        self.sip_port = ports.free_sip_port(LOOPBACK)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / f"{self.name}.log"

    def pin(self, argv: list[str]) -> list[str]:
        if self.realtime is not None:
            argv = ["chrt", "--fifo", str(self.realtime), *argv]
        return ["taskset", "-c", self.cpu, *argv] if self.cpu is not None else argv

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_ticks(self) -> int:
        return session_cpu_ticks(self.pid)

    def pids(self) -> list[int]:
        return session_pids(self.pid)

    def spawn(self, argv: list[str], env: Mapping[str, str] | None = None, log: Path | None = None) -> None:
        with (log or self.log).open("wb") as out:
            self.proc = processes.spawn(
                self.pin(argv),
                cwd=self.workdir,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc, [(signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)])
        ports.release(self.sip_port)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def version(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError


class Voxswitch(Server):
    """`voxswitch serve` on loopback with a fresh data directory; `devices` are made before it starts."""

    name = "voxswitch"

    def __init__(
        self,
        workdir: Path,
        cpu: str | None,
        *,
        devices: Sequence[tuple[str, str]] = (),
        env: Mapping[str, str] | None = None,
        command: str | None = None,
    ) -> None:
        super().__init__(workdir, cpu)
        self.command = command
        self.devices = list(devices)
        self.data_dir = self.workdir / "data"
        self.http_port = ports.free_tcp_port(LOOPBACK)
        self.tls_port = ports.free_tcp_port(LOOPBACK)
        self.env = {
            **os.environ,
            "VOXSWITCH_DATA_DIR": str(self.data_dir),
            "VOXSWITCH_HTTP_HOST": LOOPBACK,
            "VOXSWITCH_HTTP_PORT": str(self.http_port),
            "VOXSWITCH_SIP_HOST": LOOPBACK,
            "VOXSWITCH_SIP_PORT": str(self.sip_port),
            "VOXSWITCH_SIP_TLS_PORT": str(self.tls_port),
            "VOXSWITCH_RATE_LIMITS_ENABLED": "false",
            # Every request comes from 127.0.0.1: an overloaded step must not get the next ones banned.
            "VOXSWITCH_SIP_BAN_AFTER": "1000000000",
            "VOXSWITCH_LOG_LEVEL": "WARNING",
            **(env or {}),
        }

    def version(self) -> str:
        from importlib.metadata import version

        return version("voxswitch")

    def _create_devices(self) -> None:
        """The SIP accounts, made through DeviceService (as `voxswitch device add` does), in one process."""
        if not self.devices:
            return
        script = textwrap.dedent(
            """
            import asyncio, sys
            from voxswitch.api.state import AppState
            from voxswitch.config import Settings
            from voxswitch.store.migrate import upgrade

            async def main() -> None:
                settings = Settings()
                settings.data_dir.mkdir(parents=True, exist_ok=True)
                state = AppState.build(settings)
                try:
                    await upgrade(state.db)
                    pairs = sys.argv[1:]
                    for user, password in zip(pairs[::2], pairs[1::2]):
                        await state.devices.create(name=f"bench {user}", username=user, password=password)
                finally:
                    await state.db.dispose()

            asyncio.run(main())
            """
        )
        flat = [x for pair in self.devices for x in pair]
        subprocess.run([sys.executable, "-c", script, *flat], env=self.env, check=True, timeout=120)

    def start(self) -> None:
        self._create_devices()
        voxswitch = shutil.which("voxswitch", path=str(VENV_BIN)) or str(VENV_BIN / "voxswitch")
        self.spawn(shlex.split(self.command) if self.command else [voxswitch, "serve"], env=self.env)

        def healthy() -> bool:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.http_port}/health", timeout=1) as r:
                return r.status == 200

        wait_until(healthy, 60, "voxswitch /health", self.alive)
        wait_until(lambda: sip_options_ping(self.sip_port), 20, "voxswitch SIP", self.alive)


class Kamailio(Server):
    """Kamailio from `template` (placeholders in double braces; listen, port and mpath are filled
    here, the rest from `values`), in the foreground with its workers as children."""

    name = "kamailio"

    def __init__(self, workdir: Path, cpu: str | None, template: Path, values: Mapping[str, str]) -> None:
        super().__init__(workdir, cpu)
        self.template = template
        self.values = dict(values)

    def version(self) -> str:
        out = subprocess.run(["kamailio", "-v"], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0].removeprefix("version: ").strip() if out else "?"

    def render_config(self) -> Path:
        values = {"listen": LOOPBACK, "port": str(self.sip_port), "mpath": KAMAILIO_MODULES, **self.values}
        text = self.template.read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        if "{{" in text:
            raise RuntimeError(f"{self.template.name} has a placeholder the runner does not fill")
        path = self.workdir / "kamailio.cfg"
        path.write_text(text)
        return path

    def start(self) -> None:
        cfg = self.render_config()
        check = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"kamailio rejects {cfg}:\n{check.stdout}{check.stderr}")
        rundir = self.workdir / "run"
        rundir.mkdir(exist_ok=True)
        # -DD: stay in the foreground (our session) with the workers as children; -E: log to stderr.
        argv = ["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(rundir), "-P", str(rundir / "kamailio.pid")]
        self.spawn([*argv, "-m", "128", "-M", "16"])
        wait_until(lambda: sip_options_ping(self.sip_port), 20, "kamailio SIP", self.alive)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """The server started (its log tail printed if anything fails while it runs) and always stopped."""
    say(f"\n== {server.name} {server.version()}: starting on UDP {LOOPBACK}:{server.sip_port}")
    try:
        server.start()
        say(f"  ready (pid {server.pid}, idle CPU check: {server.cpu_ticks() / TICKS:.1f} s used so far)")
        yield server
    except Exception:
        say(f"  {server.name} log tail:\n{textwrap.indent(server.log_tail(), '    ')}")
        raise
    finally:
        server.stop()
        say(f"  {server.name} stopped")
