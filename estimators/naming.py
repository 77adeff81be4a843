"""Display names: how an estimator spec is shown in tables and figures.

An estimator declares ``display_name`` ("REINFORCE-LOO", "DisARM") and, for a variant whose
generic spelling reads badly, ``variant_names = {"double_cv:tune=false": "double CV, fixed"}``.
Other variants are spelled from the name and the options: ``score_function:baseline=loo`` ->
"score function (LOO)", ``baseline=none`` -> "(no baseline)", ``rebar:tune=true`` -> "REBAR
(tune)", ``gumbel_softmax:temperature=0.5`` -> "Gumbel-softmax (temperature=0.5)". A name that is
not registered is shown with underscores as spaces. The suite writes these names into every
result row; the report shows them and never spells names itself.

>>> import estimators
>>> estimators.display_name("score_function:baseline=loo")
'score function (LOO)'
"""
from __future__ import annotations

import re

__all__ = ["display_name", "option_words"]

_WORDS = {"loo": "LOO", "mlp": "MLP", "vae": "VAE", "bernoulli": "Bernoulli",
          "gaussian": "Gaussian", "gumbel": "Gumbel", "nonseparable": "non-separable",
          "moving_average": "moving average", "true": "", "false": "off"}


def _word(text: str) -> str:
    return _WORDS.get(text.lower(), text.replace("_", " "))


def option_words(options: str) -> list[str]:
    """``baseline=loo,tune=true`` -> ``["LOO", "tune"]``: the options as a reader says them."""
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
    return parts


def display_name(spec: object, registry) -> str:
    """The name ``spec`` is shown under, from ``registry``'s declarations (see the module's
    notes); ``estimators.display_name(spec)`` asks the estimator registry."""
    text = str(spec).strip()
    base, _, options = text.partition(":")
    info = registry.entry(base).info if base in registry else {}
    declared = info.get("variant_names", {}).get(text)
    if declared:
        return declared
    name = info.get("display_name") or base.replace("_", " ")
    parts = option_words(options)
    return f"{name} ({', '.join(parts)})" if parts else name
