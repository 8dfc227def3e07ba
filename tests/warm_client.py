"""The client of tests/warm_python.py: runs `python ARGS...` there, with this process's standard
input, output and error, environment and working directory, and exits with its status.

    python -I -S tests/warm_client.py SOCKET ARGS...

It runs once per command, so it imports nothing but the C socket module (json, socket, struct
or typing would each add as much again to its start-up).
"""

import _socket
import os
import sys

# A request is the working directory, the number of arguments, the arguments and the
# environment's NAME=VALUE entries, NUL-separated, after its length; the answer is the command's
# exit status. Both numbers are 4 bytes, big-endian.
SIZE = 4
STDIO = (0, 1, 2)


def client(path: str, argv: list[str]) -> int:
    fields = [os.getcwdb(), str(len(argv)).encode(), *map(os.fsencode, argv)]
    fields += [name + b"=" + value for name, value in os.environb.items()]
    request = b"\0".join(fields)
    fds = b"".join(fd.to_bytes(SIZE, sys.byteorder) for fd in STDIO)
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(path)
        message = len(request).to_bytes(SIZE, "big") + request
        sent = conn.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        conn.sendall(message[sent:])
        status = b""
        while len(status) < SIZE and (chunk := conn.recv(SIZE)):
            status += chunk
    finally:
        conn.close()
    # No status: the command died without saying (a crash), as a failure.
    return int.from_bytes(status, "big", signed=True) if len(status) == SIZE else 1


if __name__ == "__main__":
    sys.exit(client(sys.argv[1], sys.argv[2:]))
