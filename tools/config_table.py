"""The configuration table of docs/configuration.md, from the one list of variables
(shared/workflow/settings.py).

python -m tools.config_table     prints it; tests/test_settings.py checks the page holds it
"""

from __future__ import annotations

from typing import Any

from shared.workflow.settings import VARIABLES, Variable

HEADER = ("| variable | read by | meaning | default |", "|---|---|---|---|")


def row(variable: Variable[Any]) -> str:
    readers = "local only" if variable.local else ", ".join(variable.readers)
    return f"| `{variable.name}` | {readers} | {variable.meaning} | {variable.shown_default} |"


def table() -> str:
    return "\n".join([*HEADER, *(row(variable) for variable in VARIABLES)])


if __name__ == "__main__":
    print(table())
