"""What a benchmark ran on: processor, kernel, Python, SIPp, load average."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path


def machine() -> dict[str, object]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True, timeout=10).stdout
    banner = next((line.strip() for line in sipp.splitlines() if "SIPp v" in line), "?")
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sipp": banner.removeprefix("SIPp ").split(" ")[0].rstrip(".,") if banner != "?" else "?",
        "loadavg_start": os.getloadavg(),
    }
