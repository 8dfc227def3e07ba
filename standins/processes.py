"""Processes of our own (emulators, stand-ins, functions, the journal proxy): each in a session
of its own, its output in a log file, stopped by its process id."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parent.parent
FUNCTIONS_FRAMEWORK = str(Path(sys.executable).parent / "functions-framework")


class StackError(RuntimeError):
    """Something did not come up; the message says what, with the end of its log."""


# What a process logs when its port was taken, between free_port() choosing it and the process's
# own bind, by another process (a parallel test run, another user of the machine).
PORT_TAKEN = ("Address already in use", "Connection in use")
PORT_ATTEMPTS = 3


def die_with_parent(command: list[str]) -> list[str]:
    """`command`, run so that it gets SIGTERM when the thread that started it ends: a killed
    test run or sandbox then leaves no emulator or function behind. Start processes from the
    main thread. (util-linux's setpriv; where it is missing, the command runs as it is.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Whether 127.0.0.1:`port` accepts a TCP connection (a request could run a function)."""
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    timed_out: Callable[[], str],
    check: Callable[[], None] = lambda: None,
) -> None:
    """Poll `condition` until it holds; between polls `check` may raise first (a process that
    exited); after `timeout` s, StackError with the message `timed_out()` returns."""
    deadline = time.monotonic() + timeout
    while not condition():
        check()
        if time.monotonic() > deadline:
            raise StackError(timed_out())
        time.sleep(0.02)


class Child:
    """One process of ours, serving on 127.0.0.1:`port`: `launch` starts it, `wait_ready` waits
    until it serves (`start` does both), `stop` ends it.

    `command` may be a function of the port: then a first start that finds its port taken is
    moved to another one (PORT_TAKEN); a fixed command keeps its port, as a restart must."""

    def __init__(
        self,
        name: str,
        command: list[str] | Callable[[int], list[str]],
        port: int,
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._command_for = command if callable(command) else None
        self.command = command(port) if callable(command) else command
        self.name, self.port, self.log = name, port, log
        self.url = f"http://127.0.0.1:{port}"
        self._env = None if env is None else dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self._served = False
        self._log_start = 0

    def launch(self) -> Self:
        """Start without waiting; `spawned_at` is the monotonic time just before."""
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.spawned_at = time.monotonic()
            self.process = subprocess.Popen(
                die_with_parent(self.command),
                cwd=REPO,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def ready(self) -> bool:
        """Whether it serves: by default, once its port accepts connections."""
        return port_open(self.port)

    def start(self, timeout: float = 30.0) -> Self:
        return self.launch().wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> Self:
        """Poll `ready` until it holds; when the process exits or time runs out, StackError,
        and the process is stopped (unless it can move off a port that was taken)."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                wait_for(
                    self.ready,
                    timeout,
                    lambda: f"{self.name} did not get ready in {timeout:.0f} s:\n{self.tail()}",
                    self.check_alive,
                )
            except StackError:
                self.stop()
                if attempt == PORT_ATTEMPTS or not self._move_off_a_taken_port():
                    raise
                self.launch()
            else:
                self._served = True
                return self
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _move_off_a_taken_port(self) -> bool:
        """Whether the last launch lost its port to another process and, never having served
        and having a command for any port, could be given another."""
        if self._served or self._command_for is None:
            return False
        with self.log.open("rb") as log:
            log.seek(self._log_start)
            said = log.read().decode(errors="replace")
        if not any(sign in said for sign in PORT_TAKEN):
            return False
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = self._command_for(self.port)
        return True

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            status = self.process.returncode
            raise StackError(f"{self.name} exited with status {status}:\n{self.tail()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no log)"

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def terminate(self) -> None:
        """SIGTERM the session the process leads (started with `start_new_session`), children
        included, without waiting: several processes then stop side by side."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self, grace_s: float = 10.0) -> None:
        """`terminate`, then wait; SIGKILL the session after `grace_s`."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        self.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the session, as a crashed or preempted instance would stop."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class FunctionProcess(Child):
    """A functions-framework process serving one function on 127.0.0.1:`port`."""

    def __init__(
        self,
        name: str,
        function: tuple[str, str, str],
        port: int,
        log: Path,
        env: Mapping[str, str],
    ) -> None:
        source, target, signature = function
        command = [
            FUNCTIONS_FRAMEWORK,
            f"--source={source}",
            f"--target={target}",
            f"--signature-type={signature}",
            "--host=127.0.0.1",
            f"--port={port}",
        ]
        super().__init__(name, command, port, log, env)
