"""Where a result came from: the code version of what produced it, the commit and the machine.

* **Code versions** (:func:`code_version`): ``"<distribution>==<version>#<hash>"``, the
  distribution that ships the module (``importlib.metadata.packages_distributions``) and 12 hex
  digits of the sha256 of its source. The project's own modules (``estimators``, ``suite``) hash
  their module's file; a plugin hashes EVERY module its package ships (a plugin's estimator may
  live in a helper module its registering module imports). :func:`estimator_version`,
  :func:`task_version`, :func:`training_task_version`, :func:`loss_version` find the module of
  a registered name; :func:`torch_version` is torch's.
* **Libraries that compute results** (:data:`LIBRARIES`): their versions are part of the setup
  cache's key (:func:`suite.benchutil.code_key`).
* **Commit** (:func:`commit`): asv's ``ASV_COMMIT`` where asv set it, else ``git rev-parse HEAD``
  of the project when it is a git checkout, else ''.
* **Machine** (:func:`machine`, :func:`machine_id`): the asv machine name when it can be known
  (the one machine of ``~/.asv-machine.json``), else the host name, as asv's default; and a hash
  of the CPU model, the number of CPUs and the memory, which tells apart machines of one name
  with different hardware.

Everything is computed once per process. Nothing here imports torch at import.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from estibench import settings as _settings

__all__ = ["code_version", "module_version", "estimator_version", "task_version",
           "training_task_version", "loss_version", "torch_version", "library_versions",
           "plugin_sources", "commit", "machine", "machine_id", "LIBRARIES", "ROOT"]

ROOT = Path(__file__).resolve().parents[1]
#: the libraries whose version changes what the suite computes (distribution names)
LIBRARIES = ("torch", "numpy", "scikit-learn", "sacrebleu", "pot", "rapidfuzz")
#: this project's own top-level packages (one source file per module is hashed)
_OWN = ("estimators", "suite", "estibench")


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _distribution(top: str) -> str:
    names = list(dict.fromkeys(_distributions().get(top, [])))
    if not names:
        return top
    try:
        return f"{names[0]}=={importlib.metadata.version(names[0])}"
    except importlib.metadata.PackageNotFoundError:
        return names[0]


def _package_files(module) -> list[Path]:
    """The source files hashed for ``module``: its own file for the project's modules, every
    ``.py`` file of its top-level package for anything else (a plugin)."""
    top = module.__name__.partition(".")[0]
    own = Path(getattr(module, "__file__", "") or "")
    if top in _OWN or not own.name:
        return [own] if own.name else []
    package = sys.modules.get(top)
    root = Path(getattr(package, "__file__", "") or "")
    if root.name == "__init__.py":
        return sorted(root.parent.rglob("*.py"))
    return [root] if root.name else [own]


@functools.cache
def _hash(files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for path in files:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(str(path).encode())
    return digest.hexdigest()[:12]


def module_version(name: str) -> str:
    """The code version of the module ``name`` (already imported): see the module's notes."""
    module = sys.modules.get(name)
    if module is None:
        return ""
    top = name.partition(".")[0]
    return f"{_distribution(top)}#{_hash(tuple(_package_files(module)))}"


def code_version(factory) -> str:
    """The code version of the module that defines ``factory`` (a class or function; a
    ``functools.partial`` of one)."""
    while isinstance(getattr(factory, "func", None), Callable):
        factory = factory.func
    return module_version(getattr(factory, "__module__", "") or "")


def _registered(registry, name: str) -> str:
    base = str(name).partition(":")[0]
    if not base or base not in registry:
        return ""
    return code_version(registry.entry(base).factory)


def estimator_version(spec: str) -> str:
    import estimators
    return _registered(estimators.ESTIMATORS, spec)


def loss_version(name: str) -> str:
    import estimators
    return _registered(estimators.LOSSES, name)


def task_version(name: str) -> str:
    from .registries import TASKS
    return _registered(TASKS, name)


def training_task_version(name: str) -> str:
    from .registries import TRAINING_TASKS
    return _registered(TRAINING_TASKS, name)


@functools.cache
def torch_version() -> str:
    return _library("torch")


def _library(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.cache
def library_versions() -> tuple[tuple[str, str], ...]:
    """(distribution, version) of every library in :data:`LIBRARIES` ('' when absent)."""
    return tuple((name, _library(name)) for name in LIBRARIES)


def plugin_sources() -> list[Path]:
    """Every module of every package outside this project that registers an estimator, loss,
    metric, task or training task (a plugin's whole package, helpers included)."""
    import estimators

    from .registries import TASKS, TRAINING_TASKS

    files: set[Path] = set()
    for registry in (estimators.ESTIMATORS, estimators.LOSSES, estimators.METRICS, TASKS,
                     TRAINING_TASKS):
        for name in registry.available():
            factory = registry.entry(name).factory
            while isinstance(getattr(factory, "func", None), Callable):
                factory = factory.func
            module = sys.modules.get(getattr(factory, "__module__", "") or "")
            if module is not None and module.__name__.partition(".")[0] not in _OWN:
                files.update(_package_files(module))
    return sorted(p.resolve() for p in files if p.exists())


@functools.cache
def _git_head() -> str:
    if not (ROOT / ".git").exists():
        return ""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def commit() -> str:
    """The commit the results belong to: asv's ``ASV_COMMIT`` (set in its benchmark processes),
    else the project's ``git rev-parse HEAD``, else ''."""
    return _settings.environ("ASV_COMMIT").strip() or _git_head()


@functools.cache
def machine() -> str:
    """asv's machine name when there is exactly one in ``~/.asv-machine.json``, else the host
    name (asv's default machine name)."""
    try:
        known = json.loads((Path.home() / ".asv-machine.json").read_text())
        names = [k for k in known if k != "version"]
        if len(names) == 1:
            return str(names[0])
    except (OSError, ValueError, AttributeError):
        pass
    return platform.node()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


@functools.cache
def machine_id() -> str:
    """12 hex digits of the sha256 of (CPU model, number of CPUs, memory in GiB, architecture)."""
    facts = (_cpu_model(), os.cpu_count(), round(_memory_bytes() / 2 ** 30), platform.machine())
    return hashlib.sha256(repr(facts).encode()).hexdigest()[:12]
