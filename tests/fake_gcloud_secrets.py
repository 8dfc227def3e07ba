"""The `gcloud secrets` commands deploy.sh runs, for its tests: each one made against the Secret
Manager stand-in at SECRET_MANAGER_API_BASE over its REST API, so deploy.sh's gcloud and
tools/go_live.py's Python client see one Secret Manager.

    python tests/fake_gcloud_secrets.py secrets describe NAME --project=P
    ... secrets create NAME --project=P --replication-policy=automatic --data-file=-
    ... secrets versions list NAME --project=P --filter=state:ENABLED ... --format=value(name)
    ... secrets versions describe VERSION --secret=NAME --project=P --format=value(state)
    ... secrets add-iam-policy-binding NAME ...   (a no-op)

Exit 1, as gcloud does, when Secret Manager refuses; 2 for a command deploy.sh does not run.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen


def call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stand-in's answer (urllib: this runs once per command, and requests is slow to
    import); HTTPError when it refuses."""
    data = None if body is None else json.dumps(body).encode()
    with urlopen(Request(url, data), timeout=10) as answer:  # noqa: S310 -- the stand-in's URL
        return json.loads(answer.read())


def main(argv: list[str]) -> int:
    flags = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    words = [arg for arg in argv if not arg.startswith("--")]
    base = f"{os.environ['SECRET_MANAGER_API_BASE']}/v1/projects/{flags['project']}/secrets"
    try:
        match words[1:]:
            case ["describe", name]:
                call(f"{base}/{name}")
                return 0
            case ["create", name] if flags.get("data-file") == "-":
                call(f"{base}?secretId={name}", {"replication": {"automatic": {}}})
                data = base64.b64encode(sys.stdin.buffer.read()).decode()
                call(f"{base}/{name}:addVersion", {"payload": {"data": data}})
                return 0
            case ["versions", "list", name]:
                versions = call(f"{base}/{name}/versions")["versions"]
                print(next((version["name"] for version in versions), ""))
                return 0
            case ["versions", "describe", version]:
                print(call(f"{base}/{flags['secret']}/versions/{version}")["state"])
                return 0
            case ["add-iam-policy-binding", _]:
                return 0
    except HTTPError:
        return 1
    print(f"fake gcloud: unexpected command: gcloud {' '.join(argv)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
