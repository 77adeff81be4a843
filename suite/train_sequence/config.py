"""Every size and hyperparameter of a sequence task, in four parts.

* :class:`DataConfig`: what the data is (both tasks' generators read it); the key of the data
  cache.
* :class:`ModelConfig`: the GRU's sizes and its MLE pretraining; with the data, the key of the
  pretrained-checkpoint cache.
* :class:`RunConfig`: a run's length, minibatches and checkpoints.
* :class:`MethodConfig`: each method's optimizer and hyperparameters.

So sweeping a method's options reuses the data and the checkpoint: the caches are keyed by the
parts they depend on, nothing else. A task takes every field as a flat constructor option
(``TRAINING_TASKS.get("markov_termination", hidden=128, steps=400)``; the names are unique across
the parts); :meth:`SequenceConfig.from_options` routes them. Each field states its own valid
range (``_option``), and :meth:`SequenceConfig.checked` checks them all.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..checks import check_bool, check_choice, check_int, check_number
from ..training import evenly_spaced

__all__ = ["DataConfig", "ModelConfig", "RunConfig", "MethodConfig", "SequenceConfig",
           "OPTIMIZERS"]

OPTIMIZERS = ("adam", "sgd")


def _option(default, *, minimum: int | None = None, allow_zero: bool = False,
            maximum: float | None = None, choices: tuple[str, ...] = ()):
    """A config field and its valid values: ints ``>= minimum``; floats finite and ``> 0``
    (``>= 0`` with ``allow_zero``, at most ``maximum``); strings among ``choices``."""
    return field(default=default, metadata={"minimum": minimum, "allow_zero": allow_zero,
                                            "maximum": maximum, "choices": choices})


def _checked_part(owner: str, part):
    values = {}
    for f in dataclasses.fields(part):
        value, meta = getattr(part, f.name), f.metadata
        if f.type == "int":
            values[f.name] = check_int(owner, f.name, value, meta["minimum"])
        elif f.type == "float":
            values[f.name] = check_number(owner, f.name, value, allow_zero=meta["allow_zero"],
                                          maximum=meta["maximum"])
        elif f.type == "bool":
            values[f.name] = check_bool(owner, f.name, value)
        else:
            values[f.name] = check_choice(owner, f.name, value, meta["choices"])
    return dataclasses.replace(part, **values)


@dataclass(frozen=True)
class DataConfig:
    """``num_tokens`` content tokens; ``num_train``/``num_valid`` examples drawn with
    ``data_seed`` (the same data for every run seed); continuations and decodes are cut at
    ``max_len`` tokens. Markov chain: ``prefix_len``, ``p_next``, ``p_eos``. Reversal: input
    lengths ``min_input_len``..``max_input_len``."""

    num_tokens: int = _option(8, minimum=2)
    num_train: int = _option(2000, minimum=1)
    num_valid: int = _option(256, minimum=1)
    data_seed: int = _option(0, minimum=0)
    max_len: int = _option(12, minimum=1)
    prefix_len: int = _option(3, minimum=1)         # markov_termination
    p_next: float = _option(0.65)                   # markov_termination
    p_eos: float = _option(0.3)                     # markov_termination
    min_input_len: int = _option(2, minimum=1)      # sequence_reversal
    max_input_len: int = _option(5, minimum=1)      # sequence_reversal

    def checked(self, owner: str) -> DataConfig:
        out = _checked_part(owner, self)
        if not out.p_eos < out.p_next or out.p_next + out.p_eos > 1:
            raise ValueError(f"{owner}: need p_eos < p_next and p_next + p_eos <= 1 (EOS likely "
                             f"but never the most likely token), got p_next={out.p_next}, "
                             f"p_eos={out.p_eos}")
        if out.min_input_len > out.max_input_len:
            raise ValueError(f"{owner}: min_input_len ({out.min_input_len}) must be <= "
                             f"max_input_len ({out.max_input_len})")
        return out


@dataclass(frozen=True)
class ModelConfig:
    """Embedding ``embed``, GRU ``hidden``; pretraining: ``pretrain_steps`` of
    Adam(``pretrain_lr``, decayed linearly to 0) on minibatches of ``pretrain_batch_size``."""

    embed: int = _option(16, minimum=1)
    hidden: int = _option(32, minimum=1)
    pretrain_steps: int = _option(200, minimum=0)
    pretrain_lr: float = _option(0.02)
    pretrain_batch_size: int = _option(64, minimum=1)

    def checked(self, owner: str) -> ModelConfig:
        return _checked_part(owner, self)


@dataclass(frozen=True)
class RunConfig:
    """``steps`` updates on minibatches of ``batch_size`` prefixes, ``num_checkpoints`` evenly
    spaced checkpoints (step 0 included) evaluated on the first ``eval_size`` held-out
    examples."""

    steps: int = _option(40, minimum=1)
    batch_size: int = _option(32, minimum=1)
    num_checkpoints: int = _option(4, minimum=2)
    eval_size: int = _option(256, minimum=1)

    def checked(self, owner: str) -> RunConfig:
        return _checked_part(owner, self)


@dataclass(frozen=True)
class MethodConfig:
    """``optimizer`` and learning rates ``mle_lr``, ``pg_lr``, ``es_lr``; ``pg_samples`` K;
    hard-clipping thresholds ``pg_clip_gamma`` (of the policy gradient) and ``mgs_clip_gamma``
    (of the MGS step, whose norm is about ``σ·sqrt(#params)``: a step, not a gradient, hence its
    own threshold); MGS ``mgs_candidates``, ``mgs_sigma``, ``mgs_alpha``, ``mgs_guide_scale``
    (η), ``mgs_mixture``, ``mgs_proposal_correction``; ES ``es_directions``, ``es_sigma``."""

    optimizer: str = _option("adam", choices=OPTIMIZERS)
    mle_lr: float = _option(0.003)
    pg_lr: float = _option(0.003)
    pg_samples: int = _option(4, minimum=2)
    pg_clip_gamma: float = _option(0.1)
    mgs_candidates: int = _option(8, minimum=1)
    mgs_sigma: float = _option(0.05)
    mgs_alpha: float = _option(0.01)
    mgs_guide_scale: float = _option(0.5, allow_zero=True)
    mgs_mixture: float = _option(0.5, allow_zero=True, maximum=1.0)
    mgs_proposal_correction: bool = _option(False)
    mgs_clip_gamma: float = _option(3.0)
    es_directions: int = _option(4, minimum=1)
    es_sigma: float = _option(0.05)
    es_lr: float = _option(0.01)

    def checked(self, owner: str) -> MethodConfig:
        return _checked_part(owner, self)


_PARTS = {"data": DataConfig, "model": ModelConfig, "run": RunConfig, "methods": MethodConfig}


@dataclass(frozen=True)
class SequenceConfig:
    """A sequence task's configuration: its :class:`DataConfig`, :class:`ModelConfig`,
    :class:`RunConfig` and :class:`MethodConfig`."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    run: RunConfig = field(default_factory=RunConfig)
    methods: MethodConfig = field(default_factory=MethodConfig)

    @staticmethod
    def option_names() -> list[str]:
        """Every flat option, part by part."""
        return [f.name for part in _PARTS.values() for f in dataclasses.fields(part)]

    @classmethod
    def from_options(cls, owner: str = "sequence task", **options) -> SequenceConfig:
        """The configuration with the flat ``options`` routed to their parts (unknown names are
        a ``TypeError`` listing every option)."""
        unknown = sorted(set(options) - set(cls.option_names()))
        if unknown:
            raise TypeError(f"training task {owner!r}: unknown option(s) {unknown}; its "
                            f"options are: {', '.join(cls.option_names())}")
        parts = {}
        for key, part in _PARTS.items():
            names = {f.name for f in dataclasses.fields(part)}
            parts[key] = part(**{k: v for k, v in options.items() if k in names})
        return cls(**parts)

    def checked(self, owner: str) -> SequenceConfig:
        """The configuration with every option checked (and numpy ints made ints)."""
        return SequenceConfig(*(getattr(self, key).checked(owner) for key in _PARTS))

    def checkpoints(self) -> list[int]:
        """The shared step schedule: ``num_checkpoints`` evenly spaced steps from 0 to ``steps``."""
        return evenly_spaced(self.run.steps, self.run.num_checkpoints)
