"""The floor: a bare functions-framework HTTP function that answers 200 and does nothing else."""

from __future__ import annotations

import flask
import functions_framework


@functions_framework.http
def bare(request: flask.Request) -> tuple[str, int]:
    return "ok", 200
