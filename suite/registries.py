"""Registries of the suite's tasks (same machinery and plugin route as the estimators'), and the
names they are shown under.

A task (gradient or training) may declare ``display_name="..."`` when it registers; otherwise
:func:`task_display_name` spells its name: ``bernoulli_t045`` -> "Bernoulli, t = 0.45",
``bernoulli100_t045`` -> "Bernoulli ×100, t = 0.45", ``vae_bernoulli_mlp`` -> "VAE, Bernoulli,
MLP". The suite writes these names into its result rows; the report shows them.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

import estimators
from estibench.settings import ENV, Settings, SettingsError, current
from estimators.registry import Registry

__all__ = ["TASKS", "TRAINING_TASKS", "task_display_name", "method_display_name", "unknown_name",
           "variants", "expand_estimators"]

#: gradient tasks: a (dist, f) pair plus a reference gradient; see suite/tasks.py
TASKS = Registry("task", group="estibench.tasks")
#: training tasks for metric alignment: see suite/train_*.py
TRAINING_TASKS = Registry("training task", group="estibench.training_tasks")

_WORDS = {"loo": "LOO", "mlp": "MLP", "vae": "VAE", "bernoulli": "Bernoulli",
          "gaussian": "Gaussian", "gumbel": "Gumbel", "nonseparable": "non-separable",
          "moving_average": "moving average", "true": "", "false": "off"}


def _word(text: str) -> str:
    return _WORDS.get(text.lower(), text.replace("_", " "))


def _task_part(part: str) -> str:
    m = re.fullmatch(r"t(\d)(\d+)", part)  # t045 -> t = 0.45
    if m:
        return f"t = {m.group(1)}.{m.group(2)}"
    m = re.fullmatch(r"([A-Za-z]+)(\d+)", part)  # bernoulli100 -> Bernoulli ×100
    if m:
        return f"{_word(m.group(1))} ×{m.group(2)}"
    return _word(part)


def task_display_name(name: str) -> str:
    """The name a task (gradient or training, ``name`` or ``name:options``) is shown under: its
    declared ``display_name``, else its name spelled out (see the module's notes)."""
    text = str(name).strip()
    base = text.partition(":")[0]
    for registry in (TASKS, TRAINING_TASKS):
        if base in registry:
            declared = registry.entry(base).info.get("display_name")
            if declared:
                return str(declared)
    parts = [p for p in text.split("_") if p]
    return ", ".join(_task_part(p) for p in parts) or text


def method_display_name(method: str) -> str:
    """The name a training method is shown under: an estimator spec's display name
    (``estimators.display_name``), a loss's declared ``display_name``, else the method with
    underscores as spaces (a task's own baselines: ``mle``, ``vq_straight_through``)."""
    base = str(method).partition(":")[0]
    if base in estimators.ESTIMATORS:
        return getattr(estimators, "display_name", str)(method)
    if base in estimators.LOSSES:
        declared = estimators.LOSSES.entry(base).info.get("display_name")
        if declared:
            return str(declared)
    return str(method).replace("_", " ")


# -- names the settings give ----------------------------------------------------------------
def unknown_name(kind: str, name: str, available: Iterable[str], setting: str,
                 settings: Settings | None = None) -> SettingsError:
    """The one-line error for a name no registry knows: the setting it came from, the closest
    registered name and what is available."""
    available = sorted(available)
    where = (current() if settings is None else settings).sources.get(setting, ENV.get(setting, setting))
    close = difflib.get_close_matches(str(name), available, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return SettingsError(f"{where}: unknown {kind} {name!r}{hint or '.'} Available: "
                         f"{', '.join(available)}")


def variants(name: str) -> tuple[str, ...]:
    return tuple(estimators.info(name).info.get("variants", (name,)))


def expand_estimators(settings: Settings | None = None) -> list[str]:
    """The estimator specs the ``estimators`` setting names, in order: a bare registered name is
    every registered variant of it (its ``variants`` info, else the name), a spec with options
    is exactly that spec. [] when the setting is empty (nothing narrowed). An estimator the
    registry does not know raises :class:`SettingsError` naming the closest one."""
    settings = current() if settings is None else settings
    known = estimators.available()
    out: list[str] = []
    for spec in settings.estimators:
        base = spec.partition(":")[0]
        if base not in known:
            raise unknown_name("estimator", base, known, "estimators", settings)
        out.extend(variants(spec) if ":" not in spec else [spec])
    return list(dict.fromkeys(out))
