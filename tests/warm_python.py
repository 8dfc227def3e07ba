"""A Python that starts warm, for the tests that run deploy.sh many times: each of its Python
commands (tools.deploy_env, tools.go_live, the fake gcloud's secrets) would otherwise spend most
of its time importing the same libraries again.

    python -m tests.warm_python SOCKET MODULE...       imports MODULE... (and what they
                                                       import), says "ready", then forks a
                                                       child per command
    python -I -S tests/warm_client.py SOCKET ARGS...   a command, run as `python ARGS...` would
                                                       run it (-m MODULE or a script)

The command gets the client's standard input, output and error (passed over the socket), its
environment, working directory and arguments, and runs in a fresh `__main__` as `python` would
run it: only the libraries are warm. The client exits with its status.
"""

from __future__ import annotations

import importlib
import os
import runpy
import signal
import socket
import sys
import traceback

from tests.warm_client import SIZE, STDIO


def serve(path: str, preload: list[str]) -> None:
    for module in preload:
        importlib.import_module(module)
        # Run as __main__ later, fresh: only what it imported stays warm.
        del sys.modules[module]
        parent, _, name = module.rpartition(".")
        if parent:
            delattr(sys.modules[parent], name)
    # Each child is waited for (its status goes to its client): so its CPU time counts as the
    # server's, and the server's as whoever waits for it (the tests' timing stays true). SIGTERM
    # ends the server once its children have ended.
    signal.signal(signal.SIGCHLD, lambda *_: _reap(os.WNOHANG))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                os._exit(_child(conn))
            conn.close()
    finally:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _reap(0)


def _reap(options: int) -> None:
    """Wait for the children that ended (WNOHANG), or for every child (0)."""
    try:
        while os.waitpid(-1, options)[0]:
            pass
    except ChildProcessError:
        pass


def _child(conn: socket.socket) -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, len(STDIO))
    while len(data) < SIZE or len(data) < SIZE + int.from_bytes(data[:SIZE], "big"):
        data += conn.recv(1 << 16)
    cwd, count, *rest = (os.fsdecode(field) for field in data[SIZE:].split(b"\0"))
    argv, environ = rest[: int(count)], rest[int(count) :]
    for target, fd in zip(STDIO, fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(entry.split("=", 1) for entry in environ)
    # What `python` puts first on sys.path: the working directory for -m, else the script's.
    first = cwd if argv[0] == "-m" else os.path.dirname(os.path.abspath(argv[0]))
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:0] = [first, *extra]
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = argv
            runpy.run_path(argv[0], run_name="__main__")
        status = 0
    except SystemExit as exit:
        status = _exit_status(exit.code)
    except BaseException:  # reported as python reports an uncaught one
        traceback.print_exc()
        status = 1
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    conn.sendall(status.to_bytes(SIZE, "big", signed=True))
    return status


def _exit_status(code: object) -> int:
    """What `python` exits with for sys.exit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
