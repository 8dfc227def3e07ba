"""`./dev` in a checkout of its own under a temporary folder, against a fake python3: every
program of the environment it makes records its command line instead of running, so a test sees
what `./dev` would have run (and that it ran nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What `./dev setup` and `./dev lock` read.
FILES = ("requirements.txt", "requirements-dev.txt", "requirements-dev.lock")

# A python3 that makes a fake environment whose python records each command (and the files it is
# given with --requirement) and fails when told to.
FAKE_PYTHON3 = r"""#!/bin/bash
set -eu
case "$1" in
  -c) exit 0 ;;
  -m)
    echo "\$ python3 $*" >> "${FAKE_LOG:?}"
    [[ $2 == venv ]] || exit 3
    venv=${*: -1}
    mkdir -p "$venv/bin"
    for tool in python pip-compile; do cp "${BASH_SOURCE[0]%/*}/fake-tool" "$venv/bin/$tool"; done
    exit 0 ;;
esac
exit 3
"""
# Any program of the fake environment: records its command line, the requirements file it is
# given and the CUSTOM_COMPILE_COMMAND it sees, and fails when FAKE_FAIL is in its arguments.
FAKE_TOOL = r"""#!/bin/bash
log=${FAKE_LOG:?}
echo "\$ ${0##*/} $*" >> "$log"
previous=""
for arg in "$@"; do
  [[ $previous == --requirement ]] && { echo "<<< $arg"; cat "$arg"; echo ">>>"; } >> "$log"
  previous=$arg
done
echo "CUSTOM_COMPILE_COMMAND=${CUSTOM_COMPILE_COMMAND:-}" >> "$log"
[[ -z ${FAKE_FAIL:-} || "$*" != *"$FAKE_FAIL"* ]]
"""


@dataclass
class Dev:
    root: Path
    log: Path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        self.log.write_text("")
        return subprocess.run(
            ["./dev", *args],
            cwd=self.root,
            env={
                "PATH": f"{self.root / 'fakebin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
                "HOME": str(self.root),
                "FAKE_LOG": str(self.log),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[str]:
        """The command lines run, in order."""
        return [line[2:] for line in self.log.read_text().splitlines() if line.startswith("$ ")]


def fake_checkout(root: Path) -> Dev:
    """`./dev` and the files it reads, copied into `root`, with the fake python3 on PATH."""
    shutil.copyfile(ROOT / "dev", root / "dev")
    (root / "dev").chmod(0o755)
    for name in FILES:
        shutil.copyfile(ROOT / name, root / name)
    fakebin = root / "fakebin"
    fakebin.mkdir()
    for name, text in (("python3", FAKE_PYTHON3), ("fake-tool", FAKE_TOOL)):
        (fakebin / name).write_text(text)
        (fakebin / name).chmod(0o755)
    return Dev(root, root / "calls.log")
