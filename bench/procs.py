"""Function processes the benchmarks start themselves, and what /proc says about any process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from standins.emulator import die_with_parent, free_port, stop_process
from standins.stack import PRODUCT_VARIABLES, REPO

FUNCTIONS_FRAMEWORK = str(Path(sys.executable).parent / "functions-framework")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# name -> (source, target, signature type)
FUNCTIONS: dict[str, tuple[str, str, str]] = {
    "bare": ("bench/baselines/bare_main.py", "bare", "http"),
    "sync": ("bench/baselines/sync_main.py", "sync_webhook", "http"),
    "ingest": ("ingest_fn/main.py", "stripe_webhook", "http"),
    "recover": ("recover_fn/main.py", "recover_payment", "cloudevent"),
}


def base_env() -> dict[str, str]:
    """The caller's environment without product variables, as LocalStack gives its functions."""
    env = {k: v for k, v in os.environ.items() if k not in PRODUCT_VARIABLES}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class FunctionProcess:
    """One functions-framework process (gunicorn master and worker) in its own session."""

    def __init__(
        self, name: str, env: Mapping[str, str], workdir: Path, port: int | None = None
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = {**base_env(), **env}
        self._log = workdir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0

    def command(self) -> list[str]:
        source, target, signature = FUNCTIONS[self.name]
        return [
            FUNCTIONS_FRAMEWORK,
            f"--source={source}",
            f"--target={target}",
            f"--signature-type={signature}",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]

    def spawn(self) -> None:
        """Start the process without waiting; `spawned_at` is the monotonic time just before."""
        with self._log.open("ab") as log:
            self.spawned_at = time.monotonic()
            self.process = subprocess.Popen(
                die_with_parent(self.command()),
                cwd=REPO,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self, timeout: float = 30.0) -> FunctionProcess:
        """Spawn and wait until the port accepts connections."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not listen within {timeout:.0f} s")
            time.sleep(0.02)
        return self

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self._log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    def log_text(self) -> str:
        try:
            return self._log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pids(self) -> list[int]:
        return group_pids(self.process.pid) if self.process is not None else []

    def stop(self) -> None:
        """Stop this process's own session (master and worker), by its process group id."""
        stop_process(self.process)

    def __enter__(self) -> FunctionProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """Every live process whose process group is `pgid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[2]) == pgid:
                found.append(int(entry))
    return sorted(found)


def pids_with_args(*needles: str) -> list[int]:
    """Processes whose command line contains every one of `needles` (for LocalStack's own)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if all(needle in args for needle in needles):
            found.append(int(entry))
    return sorted(found)


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time of the processes, in seconds."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            # utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the name).
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def peak_rss_mib(pids: Iterable[int]) -> float:
    """Sum of each process's peak resident set (VmHWM), in MiB."""
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024.0
