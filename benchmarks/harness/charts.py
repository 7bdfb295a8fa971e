"""Chart panels the ladder benchmarks share (matplotlib, imported only when a chart is drawn)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .steps import Step


def pyplot() -> Any | None:
    """matplotlib's pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def best_rate_bars(
    ax: Any,
    groups: Sequence[str],
    best: Mapping[str, Mapping[str, Step | None]],
    colours: Mapping[str, str],
    ours: str,
    peer: str,
) -> None:
    """Bars of the highest clean rate per server and group (scenario), with our/peer ratio under each."""
    servers = list(colours)
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        values = [(best.get(server, {}).get(g) or Step(server, g, 0, 0)).achieved for g in groups]
        xs = [j + (i - (len(servers) - 1) / 2) * width for j in range(len(groups))]
        drawn = ax.bar(xs, values, width, label=server.capitalize(), color=colours[server])
        ax.bar_label(drawn, labels=[f"{v:,.0f}" for v in values], fontsize=8)
    for j, g in enumerate(groups):
        a, b = best.get(ours, {}).get(g), best.get(peer, {}).get(g)
        if a and b and b.achieved:
            ax.annotate(
                f"ratio {a.achieved / b.achieved:.2f}",
                (j, 0),
                xytext=(0, -28),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
    ax.set_xticks(range(len(groups)), [g.upper() for g in groups])
    ax.set_ylabel("highest clean rate (calls/s)")
    ax.set_title("Highest rate with zero failures")
    ax.legend(fontsize=8)


def offered_vs_achieved(ax: Any, steps: Sequence[Step], scenario: str, colours: Mapping[str, str], title: str) -> None:
    """Every ladder step of ``scenario``: achieved against offered, clean (dot) or not (cross)."""
    first = next(iter(colours))
    for server in reversed(list(colours)):  # the first server drawn last, on top where they overlap
        pts = sorted(
            (st for st in steps if st.server == server and st.scenario == scenario and st.kind == "ladder"),
            key=lambda st: st.offered,
        )
        if not pts:
            continue
        ax.plot([p.offered for p in pts], [p.achieved for p in pts], "-", color=colours[server], alpha=0.6)
        ax.scatter(
            [p.offered for p in pts if p.passed],
            [p.achieved for p in pts if p.passed],
            color=colours[server],
            marker="o",
            s=22 if server == first else 70,  # a small dot inside a big one where both are clean
            label=f"{server} clean",
        )
        ax.scatter(
            [p.offered for p in pts if not p.passed],
            [p.achieved for p in pts if not p.passed],
            color=colours[server],
            marker="x",
            s=60,
            label=f"{server} not clean",
        )
    lo = min((st.offered for st in steps if st.scenario == scenario), default=1)
    hi = max((st.offered for st in steps if st.scenario == scenario), default=10)
    ax.plot([lo, hi], [lo, hi], ":", color="grey", label="achieved = offered")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 2, 5 x 10^n; the log scale's own labels overlap
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("offered (calls/s)")
    ax.set_ylabel("achieved (calls/s)")
    ax.set_title(title)
    ax.legend(fontsize=7)
