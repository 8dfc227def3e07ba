"""The functions' processes: how soon a new one answers, and what the system says of their CPU
time and peak memory (psutil)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import psutil
import requests

from standins.processes import Child

T = TypeVar("T")


def first_answer(process: Child, send: Callable[[str], T]) -> tuple[T, float]:
    """Spawn `process`, call `send` with its URL every 5 ms until it connects, then stop it: the
    answer, and the seconds from the spawn to it."""
    process.launch()
    try:
        while True:
            try:
                answer = send(process.url)
                return answer, time.monotonic() - process.spawned_at
            except requests.ConnectionError:
                process.check_alive()
                if time.monotonic() > process.spawned_at + 60:
                    raise RuntimeError(f"a new {process.name} process never answered") from None
                time.sleep(0.005)
    finally:
        process.stop()


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
