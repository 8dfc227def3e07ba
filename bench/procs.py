"""What the system says about the functions' processes: CPU time and peak memory (psutil)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import psutil


def with_children(pid: int | None) -> list[psutil.Process]:
    """A running process and all its descendants (a gunicorn master and its workers)."""
    if pid is None:
        raise RuntimeError("the process is not running")
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


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
