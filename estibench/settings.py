"""One settings object, parsed once and passed down: the only module that reads the environment.

Sources, later ones winning: the defaults below, a config file (TOML: ``estibench run --config
FILE``, or ``ESTIBENCH_CONFIG``), the ``ESTIBENCH_*`` variables, the command-line flags.
``estibench run`` turns its settings back into ``ESTIBENCH_*`` variables (:meth:`Settings.to_env`)
because asv runs the benchmarks in processes of its own; there :func:`current` parses them again.

===========================  ============================  ==========================================
field                        variable                      meaning
===========================  ============================  ==========================================
``tasks``                    ``ESTIBENCH_TASKS``           gradient tasks (names), all when empty
``estimators``               ``ESTIBENCH_ESTIMATORS``      estimator specs; a bare name means every
                                                           registered variant of it, in every grid
``num_samples``              ``ESTIBENCH_NUM_SAMPLES``     K values (1 <= K <= :data:`MAX_SAMPLES`)
``devices``                  ``ESTIBENCH_DEVICES``         ``cpu`` and/or ``cuda``
``training_tasks``           ``ESTIBENCH_TRAINING_TASKS``  training tasks (names)
``losses``                   ``ESTIBENCH_LOSSES``          losses of the training tasks (names)
``grid``                     ``ESTIBENCH_GRID``            ``default`` or ``full``
``floor_num_samples``        ``ESTIBENCH_FLOOR_NUM_SAMPLES`` K of the floor benchmark
``setup_cache``              ``ESTIBENCH_SETUP_CACHE``     ``on``, ``off`` or a folder
``results``                  ``ESTIBENCH_RESULTS``         results folder (run files go to its
                                                           ``runs/``); default: asv's results_dir
``jobs``                     ``ESTIBENCH_JOBS``            report processes (1..:data:`MAX_JOBS`)
``threads``                  ``OMP_NUM_THREADS``           torch threads per process (default 1)
``history_*``                ``ESTIBENCH_HISTORY_*``       the report benchmark's generated history
``progress``                 ``ESTIBENCH_PROGRESS``        folder for progress of the setup work
``workers``                  ``ESTIBENCH_WORKERS``         setup-work processes (``auto``: one per
                                                           usable core; 1: in-process)
``scheduler``                ``ESTIBENCH_SCHEDULER``       a Dask scheduler's address (a cluster)
``unit_timeout``             ``ESTIBENCH_UNIT_TIMEOUT``    seconds a unit of setup work may take
``tier``                     ``ESTIBENCH_TIER``            budget of the literature-scale tasks:
                                                           ``smoke``, ``default``, ``paper``
``data_dir``                 ``ESTIBENCH_DATA_DIR``        folder of the full data sets (MNIST,
                                                           Fashion-MNIST, Omniglot: IDX or npz files)
                                                           for ``suite.train_mnist_vae``'s
                                                           ``dataset`` option; '' : none (the
                                                           shipped 5,000-digit subset only)
===========================  ============================  ==========================================

A malformed value raises :class:`SettingsError` naming the variable or flag, what was expected
and what is available. Narrowing settings never change results; :meth:`Settings.key` gives the
settings a given computation depends on (so the setup cache of the gradient grid is not thrown
away when only the training tasks or the report's processes change).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = ["Settings", "SettingsError", "current", "environ", "set_environ", "read_config",
           "child_environment", "MAX_SAMPLES",
           "MAX_JOBS", "GRIDS", "DEVICES", "ENV"]

#: the largest K a grid may ask for (a K beyond it is refused rather than allocated)
MAX_SAMPLES = 4096
#: the most report processes (each holds its share of the frame)
MAX_JOBS = 16
#: the most local worker processes for the setup work
MAX_WORKERS = 256
GRIDS = ("default", "full")
#: budget tiers of the literature-scale training tasks (suite.train_mnist_vae)
TIERS = ("smoke", "default", "paper")
DEVICES = ("cpu", "cuda")
_LISTS = ("tasks", "estimators", "devices", "training_tasks", "losses")
_INTS = ("num_samples", "floor_num_samples", "history_commits")
#: field -> environment variable
ENV = {"tasks": "ESTIBENCH_TASKS", "estimators": "ESTIBENCH_ESTIMATORS",
       "num_samples": "ESTIBENCH_NUM_SAMPLES", "devices": "ESTIBENCH_DEVICES",
       "training_tasks": "ESTIBENCH_TRAINING_TASKS", "losses": "ESTIBENCH_LOSSES",
       "grid": "ESTIBENCH_GRID", "floor_num_samples": "ESTIBENCH_FLOOR_NUM_SAMPLES",
       "setup_cache": "ESTIBENCH_SETUP_CACHE", "results": "ESTIBENCH_RESULTS",
       "jobs": "ESTIBENCH_JOBS", "threads": "OMP_NUM_THREADS",
       "history_commits": "ESTIBENCH_HISTORY_COMMITS", "history_jobs": "ESTIBENCH_HISTORY_JOBS",
       "history_grid": "ESTIBENCH_HISTORY_GRID", "progress": "ESTIBENCH_PROGRESS",
       "workers": "ESTIBENCH_WORKERS", "scheduler": "ESTIBENCH_SCHEDULER",
       "unit_timeout": "ESTIBENCH_UNIT_TIMEOUT", "data_dir": "ESTIBENCH_DATA_DIR",
       "tier": "ESTIBENCH_TIER"}
#: which settings change which computation's results (the rest only narrow what is shown,
#: or how fast it is computed)
_AFFECTS = {"gradient-grid": ("tasks", "estimators", "num_samples", "devices", "grid"),
            "cost-tasks": ("tasks", "estimators", "num_samples", "devices", "grid"),
            "training": ("estimators", "losses", "grid", "data_dir", "tier"),
            "floor": ("tasks", "estimators", "floor_num_samples", "grid"),
            "landscape": ("grid",)}


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names it and what is expected."""


@dataclass(frozen=True)
class Settings:
    """Every setting of a run and a report (see the module's table)."""

    tasks: tuple[str, ...] = ()
    estimators: tuple[str, ...] = ()
    num_samples: tuple[int, ...] = ()
    devices: tuple[str, ...] = ()
    training_tasks: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    grid: str = "default"
    floor_num_samples: tuple[int, ...] = ()
    setup_cache: str = "on"
    results: str = ""
    jobs: int | None = None
    threads: int = 1
    history_commits: tuple[int, ...] = (20,)
    history_jobs: tuple[str, ...] = ("auto",)
    history_grid: str = "small"
    #: worker processes for the setup work (None: one per usable core; 1: in this process)
    workers: int | None = None
    #: the address of a running Dask scheduler to send the setup work to ('' : a local cluster)
    scheduler: str = ""
    #: seconds one unit of setup work may take before it is cancelled and its cells fail
    unit_timeout: float = 1800.0
    #: a folder the setup work reports its progress to (:mod:`estibench.progress`); '' none
    progress: str = ""
    #: the budget tier of the literature-scale training tasks (``smoke``, ``default``, ``paper``)
    tier: str = "default"
    #: the folder the full data sets are read from (``suite.data_mnist.load_dataset``); nothing
    #: is downloaded: '' means only the shipped subset is available
    data_dir: str = ""
    #: where each value came from (``ESTIBENCH_TASKS``, ``--tasks``, ``config.toml``): error texts
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        _check(self)

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """The settings of the ``ESTIBENCH_*`` variables (and ``ESTIBENCH_CONFIG``'s file)."""
        env = dict(os.environ if env is None else env)
        base = cls()
        config = env.get("ESTIBENCH_CONFIG", "").strip()
        if config:
            base = base.merged(read_config(Path(config)), f"config file {config}")
        values = {name: env[var] for name, var in ENV.items() if env.get(var, "").strip()}
        return base.merged(values, None)

    def merged(self, values: dict[str, Any], source: str | None) -> Settings:
        """These settings with ``values`` (raw text, lists or numbers) parsed over them;
        ``source`` names where they came from (None: each value's environment variable)."""
        parsed, sources = {}, dict(self.sources)
        known = {f.name for f in fields(self)} - {"sources"}
        for name, raw in values.items():
            if raw is None or name not in known:
                if name not in known:
                    raise SettingsError(f"unknown setting {name!r} in {source}; expected one of "
                                        f"{', '.join(sorted(known))}")
                continue
            where = source or ENV.get(name, name)
            sources[name] = where
            parsed[name] = _parse(name, raw, where)
        return replace(self, **parsed, sources=sources)

    # -- reading ------------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return self.grid == "full"

    def narrowed(self) -> bool:
        """True when any gradient or training narrowing is set."""
        return any(getattr(self, n) for n in ("tasks", "estimators", "num_samples", "devices",
                                               "training_tasks", "losses"))

    def usable_cores(self) -> int:
        """The cores this process may run on (its CPU affinity mask)."""
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1

    def worker_count(self) -> int:
        """How many local worker processes the setup work uses."""
        return self.workers if self.workers is not None else self.usable_cores()

    def key(self, computation: str) -> tuple:
        """The settings ``computation``'s results depend on (``gradient-grid``, ``training``,
        ``floor``, ``landscape``, ``cost-tasks``), for cache keys."""
        if computation not in _AFFECTS:
            raise SettingsError(f"unknown computation {computation!r}; expected one of "
                                f"{', '.join(_AFFECTS)}")
        return tuple((n, getattr(self, n)) for n in _AFFECTS[computation]) + (
            ("threads", self.threads),)

    def to_env(self) -> dict[str, str]:
        """The ``ESTIBENCH_*`` variables that give these settings to another process."""
        out = {}
        for name, var in ENV.items():
            value = getattr(self, name)
            if value == getattr(_DEFAULTS, name) and name != "threads":
                continue
            out[var] = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        return out

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("sources")
        return out


def _items(raw: Any) -> list[str]:
    if isinstance(raw, (list, tuple)):
        return [str(v).strip() for v in raw if str(v).strip()]
    return [v.strip() for v in str(raw).split(",") if v.strip()]


def _int(text: str, where: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: {text!r} is not an integer; expected whole numbers from "
                            f"{low} to {high}") from None
    if not low <= value <= high:
        raise SettingsError(f"{where}: {value} is out of range; expected {low} to {high}")
    return value


def _parse(name: str, raw: Any, where: str) -> Any:
    if name in _LISTS:
        values = tuple(dict.fromkeys(_items(raw)))
        if name == "devices":
            bad = [d for d in values if d not in DEVICES]
            if bad:
                raise SettingsError(f"{where}: unknown device(s) {', '.join(bad)}; expected "
                                    f"{' and/or '.join(DEVICES)}")
        return values
    if name in _INTS:
        high = 10_000 if name == "history_commits" else MAX_SAMPLES
        values = tuple(dict.fromkeys(_int(v, where, 1, high) for v in _items(raw)))
        if not values:
            raise SettingsError(f"{where}: no values; expected comma-separated whole numbers")
        return values
    if name in ("grid", "history_grid", "tier"):
        value = str(raw).strip().lower()
        allowed = {"grid": GRIDS, "history_grid": ("small", "today", "large"),
                   "tier": TIERS}[name]
        if value not in allowed:
            raise SettingsError(f"{where}: {raw!r} is not one of {', '.join(allowed)}")
        return value
    if name == "jobs":
        return None if str(raw).strip().lower() == "auto" else _int(str(raw).strip(), where, 1,
                                                                       MAX_JOBS)
    if name == "workers":
        return None if str(raw).strip().lower() == "auto" else _int(str(raw).strip(), where, 1,
                                                                       MAX_WORKERS)
    if name == "unit_timeout":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise SettingsError(f"{where}: {raw!r} is not a positive number of seconds")
        return value
    if name == "threads":
        return _int(str(raw).strip(), where, 1, 1024)
    if name == "history_jobs":
        values = tuple(_items(raw))
        for v in values:
            if v != "auto":
                _int(v, where, 1, MAX_JOBS)
        return values
    return str(raw).strip()  # setup_cache, results, progress, data_dir


def _check(s: Settings) -> None:
    if s.grid not in GRIDS:
        raise SettingsError(f"grid {s.grid!r}: expected {' or '.join(GRIDS)}")


def read_config(path: Path) -> dict[str, Any]:
    """A TOML file's ``[estibench]`` table (or its top level): setting -> value."""
    import tomllib  # Python >= 3.11

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    table = data.get("estibench", data)
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: [estibench] is not a table")
    return {k.replace("-", "_"): v for k, v in table.items()}


_DEFAULTS = Settings()
_CURRENT: dict[tuple, Settings] = {}


def current() -> Settings:
    """The settings of this process's environment, parsed once per distinct environment (asv's
    benchmark processes and the tests change it between calls)."""
    key = tuple(sorted((k, v) for k, v in os.environ.items()
                       if k.startswith("ESTIBENCH_") or k == "OMP_NUM_THREADS"))
    if key not in _CURRENT:
        _CURRENT[key] = Settings.from_env()
    return _CURRENT[key]


def environ(name: str, default: str = "") -> str:
    """Another variable of the environment, for the few facts that are not settings (asv's
    ``ASV_CONF_DIR`` in a benchmark process); read here so this stays the one module that
    reads the environment."""
    return os.environ.get(name, default)


def set_environ(values: dict[str, str]) -> None:
    """Set variables for this process and its children (``PYTORCH_NVML_BASED_CUDA_CHECK``)."""
    for key, value in values.items():
        os.environ.setdefault(key, value)


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with ``settings`` as ``ESTIBENCH_*`` variables: what a child
    process (asv and its benchmark processes) is started with. Narrowing variables these
    settings do not set are removed, so the child sees exactly these settings."""
    env = {k: v for k, v in os.environ.items() if k not in ENV.values()}
    env.update(settings.to_env())
    return env
