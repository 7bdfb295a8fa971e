"""The command-line options every ladder benchmark has, so their runners read alike."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness.report import add_core_options, resolve_cores


def add_ladder_options(
    p: argparse.ArgumentParser, here: Path, *, step_seconds: float, start_rate: float, max_rate: float
) -> None:
    """Steps and ladder, cores, profile, Voxswitch's command and environment, output and work dirs."""
    p.add_argument(
        "--step-seconds", type=float, default=step_seconds, help=f"length of each rate step (default {step_seconds:g})"
    )
    p.add_argument(
        "--start-rate", type=float, default=start_rate, help=f"first offered rate, calls/s (default {start_rate:g})"
    )
    p.add_argument("--factor", type=float, default=2.0, help="rate multiplier between steps (default 2)")
    p.add_argument("--refine", type=int, default=2, help="bisection steps after the first unclean one (default 2)")
    p.add_argument("--max-rate", type=float, default=max_rate, help=f"stop climbing here (default {max_rate:g})")
    p.add_argument("--keep-up", type=float, default=0.95, help="achieved/offered a clean step needs (default 0.95)")
    p.add_argument("--max-retransmissions", type=int, default=0, help="retransmissions a clean step may have (0)")
    add_busy_options(p)
    add_core_options(p, "SIPp and py-spy")
    p.add_argument("--no-profile", dest="profile", action="store_false", help="skip the py-spy profile")
    p.add_argument("--profile-seconds", type=float, default=10.0, help="py-spy recording length (default 10)")
    p.add_argument(
        "--voxswitch-cmd",
        default=None,
        metavar="COMMAND",
        help="run Voxswitch with this command line instead of '.venv/bin/voxswitch serve'",
    )
    p.add_argument(
        "--voxswitch-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for Voxswitch, e.g. VOXSWITCH_LOG_LEVEL=ERROR",
    )
    p.add_argument("--out", type=Path, default=here / "results", help="where results go (default: results/ here)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (SIPp logs, server logs, data)")


def finish(p: argparse.ArgumentParser, args: argparse.Namespace, servers: Sequence[str]) -> argparse.Namespace:
    """Cores as None when not pinned (or on a one-core machine), ``--servers`` as a checked list."""
    resolve_cores(args)
    args.servers = [s for s in args.servers.split(",") if s]
    for s in args.servers:
        if s not in servers:
            p.error(f"unknown server {s!r}")
    args.voxswitch_env = dict(item.split("=", 1) for item in args.voxswitch_env)
    return args


def add_busy_options(p: argparse.ArgumentParser) -> None:
    """When to run an unclean step again because the machine's other work took the server's core."""
    p.add_argument(
        "--busy-share",
        type=float,
        default=0.25,
        help="run an unclean step again when others took more than this share of the server's core (0.25)",
    )
    p.add_argument("--busy-retries", type=int, default=2, help="how often a step is run again so (default 2)")
