"""Display names for figures: estimator specs and task ids as a paper would print them.

Reports read only the results (no registry), so the names are the recorded ones run through a
small, deterministic prettifier: a table of the built-ins' usual spellings and a generic rule for
everything else (a plugin's ``my_estimator:alpha=0.5`` becomes "my estimator (alpha=0.5)").
Tables and CSV files keep the recorded names; only figure text uses these.

>>> estimator_name("score_function:baseline=loo")
'score function (LOO)'
>>> task_name("bernoulli100_t045")
'Bernoulli ×100, t = 0.45'
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .safe import plain

__all__ = ["estimator_name", "task_name", "display_names", "is_reference", "REFERENCE"]

#: the estimator that is the exact reference of a task (enumeration): identified by its name,
#: never by a variance of zero (a deterministic estimator is not the reference)
REFERENCE = "exact"

_ESTIMATORS = {
    "score_function": "score function", "reparam": "reparameterisation",
    "measure_valued": "measure-valued", "arm": "ARM", "disarm": "DisARM", "muprop": "MuProp",
    "rebar": "REBAR", "relax": "RELAX", "indecater": "IndeCateR",
    "unordered_set": "unordered set", "exact": "exact", "gumbel_softmax": "Gumbel-softmax",
    "straight_through": "straight-through",
    "straight_through_gumbel": "straight-through Gumbel", "gumbel_rao": "Gumbel-Rao",
    "reinmax": "ReinMax", "mgs": "MGS", "evolution_strategies": "evolution strategies",
}
_WORDS = {"loo": "LOO", "mlp": "MLP", "vae": "VAE", "bernoulli": "Bernoulli",
          "gaussian": "Gaussian", "gumbel": "Gumbel", "nonseparable": "non-separable",
          "moving_average": "moving average", "true": "", "false": "off"}


def is_reference(spec: object) -> bool:
    """True for the exact reference estimator (``exact`` with any options)."""
    return str(spec).partition(":")[0] == REFERENCE


def _word(text: str) -> str:
    return _WORDS.get(text.lower(), text.replace("_", " "))


def estimator_name(spec: object) -> str:
    """``score_function:baseline=loo`` -> "score function (LOO)", ``baseline=none`` -> "(no
    baseline)", ``rebar:tune=true`` -> "REBAR (tune)", ``gumbel_softmax:temperature=0.5`` ->
    "Gumbel-softmax (temperature=0.5)"; unknown names: underscores become spaces."""
    base, _, options = plain(spec).partition(":")
    name = _ESTIMATORS.get(base, base.replace("_", " "))
    parts = []
    for option in filter(None, options.split(",")):
        key, eq, value = option.partition("=")
        if not eq:
            parts.append(_word(key))
        elif value.lower() == "none":
            parts.append(f"no {_word(key)}")
        elif value.lower() == "true":
            parts.append(_word(key))
        elif re.fullmatch(r"[A-Za-z_]+", value):
            parts.append(_word(value))
        else:
            parts.append(f"{_word(key)}={value}")
    return f"{name} ({', '.join(parts)})" if parts else name


def _task_part(part: str) -> str:
    m = re.fullmatch(r"t(\d)(\d+)", part)  # t045 -> t = 0.45
    if m:
        return f"t = {m.group(1)}.{m.group(2)}"
    m = re.fullmatch(r"([A-Za-z]+)(\d+)", part)  # bernoulli100 -> Bernoulli ×100
    if m:
        return f"{_word(m.group(1))} ×{m.group(2)}"
    return _word(part)


def task_name(task: object) -> str:
    """``bernoulli_t045`` -> "Bernoulli, t = 0.45", ``vae_bernoulli_mlp`` -> "VAE, Bernoulli,
    MLP", ``categorical_table`` -> "categorical, table"."""
    parts = [p for p in plain(task).split("_") if p]
    return ", ".join(_task_part(p) for p in parts) or plain(task)


def display_names(names: Iterable[object], how=estimator_name) -> dict[str, str]:
    """name -> display name for names shown together; where two would read the same, both keep
    their recorded name (a figure must never merge two estimators)."""
    names = [str(n) for n in names]
    shown = {n: how(n) for n in names}
    counts: dict[str, int] = {}
    for label in shown.values():
        counts[label] = counts.get(label, 0) + 1
    return {n: (label if counts[label] == 1 else plain(n)) for n, label in shown.items()}
