"""What the system says about the functions' processes: CPU time and peak memory (psutil)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import psutil


def processes_with_args(*needles: str) -> list[psutil.Process]:
    """Processes whose command line contains every one of `needles` (for LocalStack's own)."""
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if all(needle in " ".join(process.info["cmdline"] or ()) for needle in needles)
    ]


def cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """User plus system CPU time of the processes still running, in seconds."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def peak_rss_mib(processes: Iterable[psutil.Process]) -> float:
    """Sum of each process's peak resident set, in MiB: VmHWM of /proc/PID/status, because
    psutil reports no peak on Linux (giampaolo/psutil#383)."""
    total_kib = 0
    for process in processes:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024.0
