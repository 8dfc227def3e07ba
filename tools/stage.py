"""What deploy.sh ships of each function, and what `./dev audit` audits: the same set.

Each function gets its main.py, the shared/ modules it imports (transitively, lazy imports
included) and a requirements.txt that pins every package it needs, direct and transitive, to
the version CI installed, tested and audited, with the hashes of its files (requirements-dev.lock):
nothing is left for Cloud Build to resolve, and its pip installs no other file.

    python -m tools.stage BUILD_DIR     (deploy.sh runs it, with the checkout's environment)
"""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import sys
from pathlib import Path

from tools import lock

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = {"ingest": "ingest_fn", "recover": "recover_fn"}  # staged name -> source directory
PACKAGE = "shared"
# Requirement markers are evaluated for the runtime the functions run on (deploy.sh's
# RUNTIME=python313 on Linux), not for the machine that stages them.
TARGET_PYTHON = "3.13"
TARGET = {
    "python_version": TARGET_PYTHON,
    "python_full_version": f"{TARGET_PYTHON}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
}
# Import name -> the distribution that provides it. google.api_core comes with either Google
# client library.
PROVIDERS = {
    "functions_framework": "functions-framework",
    "flask": "functions-framework",
    "werkzeug": "functions-framework",
    "cloudevents": "functions-framework",
    "google.cloud.pubsub": "google-cloud-pubsub",
    "google.cloud.pubsub_v1": "google-cloud-pubsub",
    "google.pubsub_v1": "google-cloud-pubsub",
    "google.cloud.secretmanager": "google-cloud-secret-manager",
    "google.auth": "google-auth",
    "stripe": "stripe",
    "requests": "requests",
    "phonenumbers": "phonenumbers",
    "regex": "regex",
    "standardwebhooks": "standardwebhooks",
}
# Standard modules whose data comes from a package: zoneinfo falls back to tzdata where the
# runtime image has no time-zone database, so a function that uses it ships the pinned tzdata.
STDLIB_DATA = {"zoneinfo": "tzdata"}
TRANSITIVE = {"google.api_core": ("google-cloud-secret-manager", "google-cloud-pubsub")}


class StageError(Exception):
    """The functions cannot be staged as CI tested them; the message says what to fix."""


def imported(path: Path, module: str) -> set[str]:
    """Every module name that `path` (module `module`) imports, lazily imported ones included."""
    names: set[str] = set()
    package = module.rpartition(".")[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def shared_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    candidate = ROOT.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def provider(name: str) -> str | tuple[str, ...] | None:
    for table in (PROVIDERS, TRANSITIVE):
        for prefix in sorted(table, key=len, reverse=True):
            if name == prefix or name.startswith(prefix + "."):
                return table[prefix]
    return None


def sources(function: str) -> tuple[set[Path], set[str]]:
    """The files `function` runs (its main.py and shared/ modules) and the distributions they
    import directly."""
    main = ROOT / FUNCTIONS[function] / "main.py"
    todo, seen, needed, unknown = [(main, "main")], {main}, set(), set()
    alternatives: list[tuple[str, ...]] = []
    while todo:
        path, module = todo.pop()
        for name in sorted(imported(path, module)):
            top = name.split(".")[0]
            if top == PACKAGE:
                found = shared_file(name)
                if found is not None and found not in seen:
                    seen.add(found)
                    todo.append((found, name))
            elif top in STDLIB_DATA:
                needed.add(STDLIB_DATA[top])
            elif top in sys.stdlib_module_names or top == "__future__":
                continue
            elif (dist := provider(name)) is None:
                # "from google.cloud import pubsub_v1" also yields the bare "google.cloud".
                if not any(p.startswith(name + ".") for p in (*PROVIDERS, *TRANSITIVE)):
                    unknown.add(name)
            elif isinstance(dist, tuple):
                alternatives.append(dist)
            else:
                needed.add(dist)
    if unknown:
        raise StageError(f"{main} imports {sorted(unknown)}: map it in PROVIDERS (tools/stage.py)")
    for choices in alternatives:
        if not needed.intersection(choices):
            needed.add(choices[0])
    return seen, needed


def requirements(function: str) -> list[lock.Pin]:
    """`function`'s requirements: every package it needs on the target runtime, direct and
    transitive, as the lock pins it (which must be the installed version: the metadata read is
    that version's)."""
    try:
        pins = lock.read()
        needed = lock.closure(((name, frozenset()) for name in sources(function)[1]), TARGET)
    except lock.LockError as exc:
        raise StageError(str(exc)) from None
    # A version other than the locked one was read for its requirements: say that first.
    for name in sorted(needed.keys() & pins.keys()):
        installed = importlib.metadata.version(name)
        if installed != pins[name].version:
            raise StageError(
                f"{name} {installed} is installed, {lock.LOCK.name} pins {pins[name].version}: "
                "run ./dev setup, so what is shipped is what was tested"
            )
    missing = sorted(needed.keys() - pins.keys())
    if missing:
        raise StageError(f"{lock.LOCK.name} pins no version of {missing}, which {function} needs")
    return [pins[name] for name in sorted(needed)]


def requirements_file(function: str) -> str:
    """`function`'s requirements.txt: with a hash on every entry, Cloud Build's pip installs
    exactly these files and refuses any other (and any package not listed)."""
    return (
        f"# Generated by deploy.sh (tools/stage.py): every package {FUNCTIONS[function]}/main.py "
        f"needs, pinned by hash as in {lock.LOCK.name}.\n"
        "# Wheels only: building one from source would install its build tools unpinned.\n"
        f"{lock.ONLY_BINARY}\n" + "".join(f"{pin.entry()}\n" for pin in requirements(function))
    )


def stage_function(function: str, out: Path) -> None:
    main = ROOT / FUNCTIONS[function] / "main.py"
    files, _ = sources(function)
    shutil.copyfile(main, out / "main.py")
    for path in sorted(files - {main}):
        target = out / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    # Every package on the way to a staged module keeps its __init__.py (shared/, shared/core/...).
    staged = list(out.joinpath(PACKAGE).rglob("*.py"))
    packages = {d for p in staged for d in p.relative_to(out).parents if d != Path(".")}
    for package in sorted(out / d for d in packages):
        init = package / "__init__.py"
        if not init.exists():
            shutil.copyfile(ROOT / package.relative_to(out) / "__init__.py", init)
    (out / "requirements.txt").write_text(requirements_file(function), encoding="utf-8")
    modules = sorted(str(p.relative_to(out)) for p in out.rglob("*.py"))
    versions = ", ".join(f"{pin.name}=={pin.version}" for pin in requirements(function))
    print(f"== staged {out}: {' '.join(modules)}; {versions}", file=sys.stderr)


def main(build: Path) -> None:
    for function in FUNCTIONS:
        out = build / function
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        stage_function(function, out)


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]))
    except StageError as exc:
        sys.exit(f"deploy.sh: {exc}")
