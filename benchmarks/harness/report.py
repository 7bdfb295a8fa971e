"""Pieces of a benchmark's report: a Markdown table, the machine-load line, a saved chart, and the
command-line options every benchmark has for its cores."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells (the first row the header) as a Markdown table with aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def finish_run(info: dict[str, Any], others: Sequence[float | None], started: float, now: float) -> None:
    """Record in `info` the end load average, the minutes taken and what other work took of the
    servers' core during the measured steps (mean and max of the per-step shares)."""
    seen = [x for x in others if x is not None]
    info["loadavg_end"] = os.getloadavg()
    info["minutes"] = round((now - started) / 60, 1)
    info["other_load_on_server_core"] = {
        "mean": sum(seen) / len(seen) if seen else None,
        "max": max(seen) if seen else None,
    }


def load_line(info: dict[str, Any], servers: str = "servers'") -> str:
    load = info["other_load_on_server_core"]
    return (
        f"Load average {' '.join(f'{x:.2f}' for x in info['loadavg_start'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in info['loadavg_end'])} at end; CPU used by others on the {servers} core "
        f"during steps: mean {load['mean'] or 0:.0%}, max {load['max'] or 0:.0%}. {info['minutes']} min."
    )


def save_figure(fig: Any, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_core_options(parser: argparse.ArgumentParser, load: str) -> None:
    parser.add_argument("--server-cpu", default="0", help="core for the server under test ('' to not pin)")
    parser.add_argument("--client-cpu", default="1", help=f"core for {load} ('' to not pin)")


def resolve_cores(args: argparse.Namespace) -> None:
    """'' means not pinned; on a single-core machine nothing is."""
    args.server_cpu = args.server_cpu or None
    args.client_cpu = args.client_cpu or None
    if (os.cpu_count() or 1) < 2:
        args.server_cpu = args.client_cpu = None
