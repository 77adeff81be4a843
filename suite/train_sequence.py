"""Sequence-generation training tasks: does optimising a surrogate improve the decoded metric?

Two tasks share one model and one training loop. A tiny GRU language model reads a *prefix*
(the context) and continues it; the *reference* is the held-out continuation; the headline metric
is the mean normalised edit distance ``lev(h, r) / max(|h|, |r|)`` (in [0, 1], lower is better)
between the model's greedy continuation h and the reference r.

* ``markov_termination``: text from a first-order Markov chain over ``num_tokens`` states in
  which, from every state, the most likely next token is the state's successor on a cycle
  (``p_next``, default 0.65) and EOS has a substantial but never maximal probability (``p_eos``,
  default 0.30). Sampled text ends (mean continuation ``(1 - p_eos)/p_eos`` tokens), but greedy
  decoding under the maximum-likelihood model follows the cycle until ``max_len``: the
  non-termination of incomplete decoding (Welleck et al., EMNLP 2020, "Consistency of a
  recurrent language model with respect to incomplete decoding"). The training loss (NLL) and
  the metric (edit distance of greedy decodes) disagree here.
* ``sequence_reversal``: the negative control. The prefix is a random token string x (length
  2-5), the reference is x reversed: one right answer, so the MLE loss and the metric agree.

Methods, all started from one MLE-pretrained checkpoint per seed (Adam with linearly decaying
step; computed once per process with ``functools.lru_cache`` and not counted in a run's seconds):

* ``mle``: continued teacher-forced maximum likelihood.
* ``pg``: score-function policy gradient on the task loss (Williams 1992) with a leave-one-out
  baseline over K sampled continuations per prefix (Kool et al. 2019, "Buy 4 REINFORCE samples"):
  ``g = 1/(KB) Σ_{b,k} (c_bk - mean_{j≠k} c_bj) ∇ log p_θ(y_bk | x_b)``, c the edit distance of
  the sampled continuation y. ``pg_clip``: the same, hard-clipped to global norm
  ``pg_clip_gamma`` (:func:`estimators.transforms.clip_hard`, Zhang et al. ICLR 2020) before the
  optimizer step.
* ``mgs``: MLE-guided parameter search (Welleck & Cho, AAAI 2021) via ``estimators.get("mgs")``:
  the minibatch's MLE gradient is the guide, the task loss is the minibatch's mean edit distance
  of greedy decodes at each candidate; the step ``Σ w_k Δ_k`` is applied as is (SGD, lr 1).
  ``mgs_clip``: that step hard-clipped to norm ``mgs_clip_gamma``.
* ``evolution_strategies``: antithetic ES (Salimans et al. 2017) on the same task loss.

``mle``, ``pg`` and ``evolution_strategies`` step with ``optimizer`` ("adam" by default, or
"sgd") at ``mle_lr``/``pg_lr``/``es_lr``. Every method sees the same minibatches for a seed.

Checkpoints (one shared schedule, step 0 included) record ``loss`` (held-out per-token NLL: the
surrogate, or its MLE counterpart), ``metric`` (held-out edit distance of greedy decodes),
``nll`` (the same NLL), ``nontermination`` (fraction of greedy decodes with no EOS within
``max_len``) and ``avg_length`` (tokens before EOS; ``max_len`` for a decode that never ends).
``evaluations_per_update`` counts decoded sequences per update (K x batch for ``pg`` and
``mgs``, 2K x batch for ES, 0 for MLE, whose teacher-forced pass decodes nothing).

Every size and hyperparameter is a constructor option (``TRAINING_TASKS.get(
"markov_termination", hidden=128, steps=400)``; see :class:`SequenceConfig`); the defaults make
one ``(method, seed)`` run take about a second on one CPU thread.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import estimators
from estimators.transforms import clip_hard

from .training import Run, TrainingTask, register_training_task, train_on_schedule

__all__ = ["SequenceConfig", "SequenceTask", "MarkovTermination", "SequenceReversal",
           "GRUModel", "Split", "decode", "decoded_lengths", "markov_chain", "pretrained"]

IGNORE = -100  # target of positions that carry no loss (torch's default ignore_index)
OPTIMIZERS = ("adam", "sgd")


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SequenceConfig:
    """Every size and hyperparameter of a sequence task (each is a constructor option).

    Data: ``num_tokens`` content tokens; ``num_train``/``num_valid`` examples drawn with
    ``data_seed`` (the same data for every run seed); continuations and decodes are cut at
    ``max_len`` tokens. Markov chain: ``prefix_len``, ``p_next``, ``p_eos``. Reversal: input
    lengths ``min_input_len``..``max_input_len``. Model: embedding ``embed``, GRU ``hidden``.
    Pretraining: ``pretrain_steps`` of Adam(``pretrain_lr``, decayed linearly to 0) on
    minibatches of ``pretrain_batch_size``. Runs: ``steps`` updates on minibatches of
    ``batch_size`` prefixes, ``num_checkpoints`` evenly spaced checkpoints (step 0 included)
    evaluated on the first ``eval_size`` held-out examples. Methods: ``optimizer`` and learning
    rates ``mle_lr``, ``pg_lr``, ``es_lr``; ``pg_samples`` K; hard-clipping thresholds
    ``pg_clip_gamma`` (of the policy gradient) and ``mgs_clip_gamma`` (of the MGS step, whose
    norm is about ``σ·sqrt(#params)``: a step, not a gradient, hence its own threshold); MGS
    ``mgs_candidates``, ``mgs_sigma``, ``mgs_alpha``, ``mgs_guide_scale`` (η), ``mgs_mixture``,
    ``mgs_proposal_correction``; ES ``es_directions``, ``es_sigma``.
    """

    # data
    num_tokens: int = 8
    num_train: int = 2000
    num_valid: int = 256
    data_seed: int = 0
    max_len: int = 12
    prefix_len: int = 3            # markov_termination
    p_next: float = 0.65           # markov_termination
    p_eos: float = 0.3             # markov_termination
    min_input_len: int = 2         # sequence_reversal
    max_input_len: int = 5         # sequence_reversal
    # model and pretraining
    embed: int = 16
    hidden: int = 32
    pretrain_steps: int = 200
    pretrain_lr: float = 0.02
    pretrain_batch_size: int = 64
    # runs
    steps: int = 40
    batch_size: int = 32
    num_checkpoints: int = 6
    eval_size: int = 256
    # methods
    optimizer: str = "adam"
    mle_lr: float = 0.003
    pg_lr: float = 0.003
    pg_samples: int = 4
    pg_clip_gamma: float = 0.1
    mgs_candidates: int = 8
    mgs_sigma: float = 0.05
    mgs_alpha: float = 0.01
    mgs_guide_scale: float = 0.5
    mgs_mixture: float = 0.5
    mgs_proposal_correction: bool = False
    mgs_clip_gamma: float = 3.0
    es_directions: int = 4
    es_sigma: float = 0.05
    es_lr: float = 0.01

    def checkpoints(self) -> list[int]:
        """The shared step schedule: ``num_checkpoints`` evenly spaced steps from 0 to ``steps``."""
        n = min(self.num_checkpoints, self.steps + 1)
        return sorted({int(round(i * self.steps / (n - 1))) for i in range(n)})


_INT_MIN = {"num_tokens": 2, "num_train": 1, "num_valid": 1, "data_seed": 0, "max_len": 1,
            "prefix_len": 1, "min_input_len": 1, "max_input_len": 1, "embed": 1, "hidden": 1,
            "pretrain_steps": 0, "pretrain_batch_size": 1, "steps": 1, "batch_size": 1,
            "num_checkpoints": 2, "eval_size": 1, "pg_samples": 2, "mgs_candidates": 1,
            "es_directions": 1}
_NONNEGATIVE = ("mgs_guide_scale", "mgs_mixture")  # every other float must be > 0


def _check_config(owner: str, config: SequenceConfig) -> SequenceConfig:
    for f in dataclasses.fields(config):
        name, value = f.name, getattr(config, f.name)
        if f.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{owner}: option {name} must be an int, got {value!r}")
            if value < _INT_MIN[name]:
                raise ValueError(f"{owner}: option {name} must be >= {_INT_MIN[name]}, "
                                 f"got {value}")
        elif f.type == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{owner}: option {name} must be a number, got {value!r}")
            positive = name not in _NONNEGATIVE
            if not math.isfinite(value) or value < 0 or (positive and value == 0):
                raise ValueError(f"{owner}: option {name} must be a finite number "
                                 f"{'> 0' if positive else '>= 0'}, got {value!r}")
        elif f.type == "bool" and not isinstance(value, bool):
            raise TypeError(f"{owner}: option {name} must be True or False, got {value!r}")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"{owner}: option optimizer must be one of {', '.join(OPTIMIZERS)}, "
                         f"got {config.optimizer!r}")
    if not config.p_eos < config.p_next or config.p_next + config.p_eos > 1:
        raise ValueError(f"{owner}: need p_eos < p_next and p_next + p_eos <= 1 (EOS likely but "
                         f"never the most likely token), got p_next={config.p_next}, "
                         f"p_eos={config.p_eos}")
    if config.mgs_mixture > 1:
        raise ValueError(f"{owner}: option mgs_mixture must be in [0, 1], got "
                         f"{config.mgs_mixture}")
    if config.min_input_len > config.max_input_len:
        raise ValueError(f"{owner}: min_input_len ({config.min_input_len}) must be <= "
                         f"max_input_len ({config.max_input_len})")
    return config


# -- data ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """``prefix`` [N, P] (the context the model reads), ``target`` [N, T + 1] (the continuation,
    then EOS, then ``IGNORE``) and ``refs`` (each continuation as a tuple of ints, EOS excluded)."""

    prefix: torch.Tensor
    target: torch.Tensor
    refs: tuple[tuple[int, ...], ...]

    def to(self, device) -> Split:
        return Split(self.prefix.to(device), self.target.to(device), self.refs)

    def head(self, n: int) -> Split:
        return Split(self.prefix[:n], self.target[:n], self.refs[:n])

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, ...]]]:
        """Rows ``index`` (a CPU tensor: the references are looked up on the host)."""
        on_device = index.to(self.prefix.device)
        return (self.prefix[on_device], self.target[on_device],
                [self.refs[i] for i in index.tolist()])


def _split(prefix: np.ndarray, cont: np.ndarray, lengths: np.ndarray, eos: int) -> Split:
    """Pack continuations ``cont`` [N, T] of ``lengths`` into targets ending in EOS. One cut at
    T tokens gets no EOS target: its end is unknown (censored), not at T."""
    n, t = cont.shape
    target = np.full((n, t + 1), IGNORE, dtype=np.int64)
    target[:, :t] = np.where(np.arange(t)[None, :] < lengths[:, None], cont, IGNORE)
    ended = lengths < t
    target[np.flatnonzero(ended), lengths[ended]] = eos
    refs = tuple(tuple(row[:k]) for row, k in zip(cont.tolist(), lengths.tolist()))
    return Split(torch.as_tensor(prefix, dtype=torch.long), torch.as_tensor(target), refs)


def markov_chain(num_tokens: int, p_next: float, p_eos: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Transition matrix [n, n + 1] (column n is EOS) and the cycle ``successor`` [n].

    From state s: ``successor[s]`` with ``p_next``, EOS with ``p_eos`` (below ``p_next``, so
    never the arg-max), each of the other ``n - 1`` states with an equal share of the rest.
    The successors form one cycle through all states, in an order drawn from ``rng``.
    """
    n = num_tokens
    perm = rng.permutation(n)
    successor = np.empty(n, dtype=np.int64)
    successor[perm] = np.roll(perm, -1)
    trans = np.full((n, n + 1), (1.0 - p_next - p_eos) / (n - 1))
    trans[np.arange(n), successor] = p_next
    trans[:, n] = p_eos
    return trans, successor


def _markov_data(config: SequenceConfig, num: int, rng: np.random.Generator,
                 trans: np.ndarray) -> Split:
    """``[BOS, s_1..s_P]`` drawn with EOS suppressed (so a context always exists), then the
    continuation drawn from the chain until EOS (cut at ``max_len``). The chain is first order,
    so the continuation's law given the prefix is the chain's own: the model is trained on the
    continuation tokens only."""
    n = config.num_tokens
    eos, bos = n, n + 1
    no_eos = trans[:, :n] / trans[:, :n].sum(1, keepdims=True)

    def draw(state: np.ndarray, table: np.ndarray) -> np.ndarray:  # inverse CDF, all rows at once
        cdf = np.cumsum(table[state], axis=1)
        return np.minimum((rng.random(state.shape[0])[:, None] > cdf).sum(1), table.shape[1] - 1)

    state = rng.integers(0, n, num)
    prefix = [np.full(num, bos), state]
    for _ in range(config.prefix_len - 1):
        state = draw(state, no_eos)
        prefix.append(state)
    cont = np.zeros((num, config.max_len), dtype=np.int64)
    lengths = np.full(num, config.max_len, dtype=np.int64)
    alive = np.ones(num, dtype=bool)
    for t in range(config.max_len):
        nxt = draw(state, trans)
        ended = alive & (nxt == eos)
        lengths[ended] = t
        alive &= ~ended
        cont[:, t] = np.where(alive, nxt, 0)
        state = np.where(alive, nxt, state)
    return _split(np.stack(prefix, axis=1), cont, lengths, eos)


def _reversal_data(config: SequenceConfig, num: int, rng: np.random.Generator) -> Split:
    """Prefix ``[PAD.., BOS, x, SEP]`` (left-padded, so that decoding starts at one position for
    every example), reference ``reversed(x)``; x uniform of length min..max_input_len."""
    n, lo, hi = config.num_tokens, config.min_input_len, config.max_input_len
    eos, bos, sep, pad = n, n + 1, n + 2, n + 3
    lengths = rng.integers(lo, hi + 1, num)
    x = rng.integers(0, n, (num, hi))
    pads = (hi - lengths)[:, None]
    j = np.arange(hi + 2)[None, :]
    x_at = np.take_along_axis(x, np.clip(j - pads - 1, 0, hi - 1), 1)
    prefix = np.where(j < pads, pad, np.where(j == pads, bos, np.where(j == hi + 1, sep, x_at)))
    t = np.arange(config.max_len)[None, :]
    rev = np.take_along_axis(x, np.clip(lengths[:, None] - 1 - t, 0, hi - 1), 1)
    cont = np.where(t < lengths[:, None], rev, 0)
    return _split(prefix, cont, lengths, eos)


# -- model ---------------------------------------------------------------------------------------
class GRUModel(torch.nn.Module):
    """Embedding -> one-layer GRU -> linear read-out over the vocabulary."""

    def __init__(self, vocab: int, embed: int, hidden: int):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embed)
        self.gru = torch.nn.GRU(embed, hidden, batch_first=True)
        self.readout = torch.nn.Linear(hidden, vocab)

    def start(self, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Read the prefix [B, P]; return the next-token logits [B, V] and the GRU state."""
        out, state = self.gru(self.embedding(prefix))
        return self.readout(out[:, -1]), state

    def step(self, token: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.gru(self.embedding(token)[:, None], state)
        return self.readout(out[:, 0]), state

    def forward(self, prefix: torch.Tensor, target: torch.Tensor, eos: int) -> torch.Tensor:
        """Teacher-forced logits [B, T, V] of the continuation ``target`` [B, T] given ``prefix``
        (IGNORE positions are fed as EOS: they come after the end and carry no loss)."""
        shifted = target[:, :-1]
        shifted = torch.where(shifted == IGNORE, torch.full_like(shifted, eos), shifted)
        out, _ = self.gru(self.embedding(torch.cat([prefix, shifted], 1)))
        return self.readout(out[:, prefix.shape[1] - 1:])


def decode(model: GRUModel, prefix: torch.Tensor, max_len: int,
           greedy: bool = True) -> torch.Tensor:
    """Continue every prefix for ``max_len`` tokens, batched over prefixes (greedy arg-max, or
    ancestral sampling from the global RNG); returns tokens [B, max_len]. Tokens after the first
    EOS mean nothing (see :func:`decoded_lengths`); there is no early exit, which would need a
    host sync per step."""
    with torch.no_grad():
        logits, state = model.start(prefix)
        tokens = []
        for t in range(max_len):
            if greedy:
                token = logits.argmax(-1)
            else:
                token = torch.multinomial(torch.softmax(logits.float(), -1), 1)[:, 0]
            tokens.append(token)
            if t + 1 < max_len:
                logits, state = model.step(token, state)
        return torch.stack(tokens, 1)


def decoded_lengths(tokens: torch.Tensor, eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens before the first EOS, whether an EOS was produced) of decodes [B, T]."""
    is_eos = tokens == eos
    ended = is_eos.any(1)
    first = is_eos.to(torch.uint8).argmax(1)  # the first maximum, i.e. the first EOS
    return torch.where(ended, first, torch.full_like(first, tokens.shape[1])), ended


def _as_lists(tokens: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    # the metric (rapidfuzz) takes Python sequences: one transfer, then slicing
    return [row[:k] for row, k in zip(tokens.tolist(), lengths.tolist())]


def _sampled_targets(tokens: torch.Tensor, lengths: torch.Tensor, ended: torch.Tensor,
                     eos: int) -> torch.Tensor:
    """Targets that score decoded tokens: the tokens, EOS where one was produced, then IGNORE."""
    pos = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    target = torch.where(pos < lengths[:, None], tokens, torch.full_like(tokens, IGNORE))
    at_eos = (pos == lengths[:, None]) & ended[:, None]
    return torch.where(at_eos, torch.full_like(tokens, eos), target)


def _nll(model: GRUModel, prefix: torch.Tensor, target: torch.Tensor, eos: int) -> torch.Tensor:
    """Mean per-token teacher-forced NLL of the continuation (EOS included)."""
    logits = model(prefix, target, eos)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE)


# -- data and pretraining, cached per process ----------------------------------------------------
_DATA_FIELDS = ("num_tokens", "num_train", "num_valid", "data_seed", "max_len", "prefix_len",
                "p_next", "p_eos", "min_input_len", "max_input_len")
_MODEL_FIELDS = ("embed", "hidden", "pretrain_steps", "pretrain_lr", "pretrain_batch_size")


def _only(config: SequenceConfig, names: Sequence[str]) -> SequenceConfig:
    """``config`` with every field outside ``names`` at its default: a cache key that ignores
    the run options, so that sweeping a method's options reuses the data and the checkpoint."""
    return dataclasses.replace(SequenceConfig(), **{n: getattr(config, n) for n in names})


@functools.lru_cache(maxsize=8)
def _make_data(task_cls: type, config: SequenceConfig) -> tuple[Split, Split]:
    return task_cls.make_data(config)


def _dataset(task_cls: type, config: SequenceConfig) -> tuple[Split, Split]:
    """(train, valid) on the CPU, built once per process."""
    return _make_data(task_cls, _only(config, _DATA_FIELDS))


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed the global RNG (MGS and ES draw from it) without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@functools.lru_cache(maxsize=16)
def _pretrain(task_cls: type, config: SequenceConfig, seed: int) -> dict[str, torch.Tensor]:
    train, _ = _dataset(task_cls, config)
    eos = config.num_tokens
    with _seeded(seed, torch.device("cpu")):
        model = GRUModel(task_cls.vocab_size(config), config.embed, config.hidden)
        opt = torch.optim.Adam(model.parameters(), lr=config.pretrain_lr)
        # decay to 0, so that the checkpoint sits near the MLE instead of bouncing around it
        decay = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: 1 - i / max(config.pretrain_steps, 1))
        for _ in range(config.pretrain_steps):
            idx = torch.randint(train.prefix.shape[0], (config.pretrain_batch_size,))
            opt.zero_grad(set_to_none=True)
            _nll(model, train.prefix[idx], train.target[idx], eos).backward()
            opt.step()
            decay.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def pretrained(task_cls: type, config: SequenceConfig, seed: int) -> dict[str, torch.Tensor]:
    """The MLE-pretrained weights (CPU state dict) for ``seed``, computed once per process."""
    return _pretrain(task_cls, _only(config, _DATA_FIELDS + _MODEL_FIELDS), seed)


# -- the tasks -----------------------------------------------------------------------------------
Update = Callable[[torch.Tensor, torch.Tensor, list[tuple[int, ...]]], None]


class SequenceTask(TrainingTask):
    """Shared machinery of the sequence tasks; subclasses define the data (:meth:`make_data`)."""

    metric = "normalised edit distance of greedy decodes to the reference (lower is better)"
    higher_is_better = False
    methods = ("mle", "pg", "pg_clip", "mgs", "mgs_clip", "evolution_strategies")
    checkpoint_measures = ("nll", "nontermination", "avg_length")
    defaults: dict[str, object] = {}  # a subclass's own defaults for SequenceConfig fields

    def __init__(self, **options):
        fields = [f.name for f in dataclasses.fields(SequenceConfig)]
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise TypeError(f"training task {self.name!r}: unknown option(s) {unknown}; "
                            f"its options are: {', '.join(fields)}")
        self.config = _check_config(self.name, SequenceConfig(**{**self.defaults, **options}))
        self.check_config(self.config)
        self._edit = estimators.get_metric("edit_distance", reduction="none")

    def schedule(self) -> list[int]:
        return list(self.config.checkpoints())

    # -- subclass hooks ---------------------------------------------------------------------
    def check_config(self, config: SequenceConfig) -> None:
        """Task-specific checks of the options (raise ValueError)."""

    @staticmethod
    def make_data(config: SequenceConfig) -> tuple[Split, Split]:
        raise NotImplementedError

    @staticmethod
    def vocab_size(config: SequenceConfig) -> int:
        raise NotImplementedError

    # -- pieces -----------------------------------------------------------------------------
    @property
    def eos(self) -> int:
        return self.config.num_tokens

    def costs(self, tokens: torch.Tensor, refs: Sequence[Sequence[int]]) -> np.ndarray:
        """Per-sequence normalised edit distance of decodes [B, T] to ``refs`` (float64 [B])."""
        lengths, _ = decoded_lengths(tokens, self.eos)
        return self._edit(_as_lists(tokens, lengths), list(refs))

    def model(self, seed: int, device="cpu") -> GRUModel:
        """A fresh copy of the MLE-pretrained model of ``seed``."""
        cls = type(self)
        with _seeded(seed, torch.device("cpu")):  # construction draws an init we overwrite
            model = GRUModel(cls.vocab_size(self.config), self.config.embed, self.config.hidden)
        model.load_state_dict(pretrained(cls, self.config, seed))
        return model.to(device)

    def data(self, device="cpu") -> tuple[Split, Split]:
        """(train, valid) splits on ``device`` (valid cut to ``eval_size``)."""
        train, valid = _dataset(type(self), self.config)
        return train.to(device), valid.head(self.config.eval_size).to(device)

    def evaluate(self, model: GRUModel, split: Split) -> dict[str, float]:
        """Held-out measures: loss = nll (teacher forced), metric and termination of greedy
        decodes."""
        model.eval()
        with torch.no_grad():
            nll = float(_nll(model, split.prefix, split.target, self.eos))
        tokens = decode(model, split.prefix, self.config.max_len)
        lengths, ended = decoded_lengths(tokens, self.eos)
        metric = float(np.mean(self._edit(_as_lists(tokens, lengths), list(split.refs))))
        return {"loss": nll, "metric": metric, "nll": nll,
                "nontermination": float((~ended).float().mean()),
                "avg_length": float(lengths.float().mean())}

    def _optimizer(self, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
        if self.config.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.SGD(params, lr=lr)

    def updater(self, method: str, model: GRUModel) -> tuple[Update, float]:
        """``(update, decodes per update)``: ``update(prefix, target, refs)`` makes one step of
        ``method`` on a minibatch."""
        self.check_method(method)
        cfg, eos = self.config, self.eos
        params = list(model.parameters())

        def greedy_cost(prefix, refs):  # the task loss of update search: a black box
            return lambda: torch.tensor(self.costs(decode(model, prefix, cfg.max_len), refs).mean())

        if method == "mle":
            opt = self._optimizer(params, cfg.mle_lr)

            def update(prefix, target, refs):
                opt.zero_grad(set_to_none=True)
                _nll(model, prefix, target, eos).backward()
                opt.step()
            return update, 0.0

        if method in ("pg", "pg_clip"):
            opt = self._optimizer(params, cfg.pg_lr)
            k = cfg.pg_samples

            def update(prefix, target, refs):
                rep = prefix.repeat(k, 1)  # [K*B, P]: row k*B + b is sample k of prefix b
                tokens = decode(model, rep, cfg.max_len, greedy=False)
                lengths, ended = decoded_lengths(tokens, eos)
                cost = torch.as_tensor(self._edit(_as_lists(tokens, lengths), list(refs) * k),
                                       device=prefix.device).view(k, -1)
                advantage = cost - (cost.sum(0, keepdim=True) - cost) / (k - 1)  # RLOO
                scored = _sampled_targets(tokens, lengths, ended, eos)
                logp = -F.cross_entropy(model(rep, scored, eos).transpose(1, 2), scored,
                                        ignore_index=IGNORE, reduction="none").sum(1)
                opt.zero_grad(set_to_none=True)
                (advantage.flatten().to(logp.dtype) * logp).mean().backward()
                if method == "pg_clip":
                    clip_hard(params, cfg.pg_clip_gamma)
                opt.step()
            return update, float(k * cfg.batch_size)

        if method in ("mgs", "mgs_clip"):
            est = estimators.get("mgs", num_candidates=cfg.mgs_candidates, sigma=cfg.mgs_sigma,
                                 alpha=cfg.mgs_alpha, guide_scale=cfg.mgs_guide_scale,
                                 mixture=cfg.mgs_mixture,
                                 proposal_correction=cfg.mgs_proposal_correction)
            opt = torch.optim.SGD(params, lr=1.0)  # p.grad = -Δθ: SGD(lr=1) applies θ + Δθ

            def update(prefix, target, refs):
                opt.zero_grad(set_to_none=True)
                _nll(model, prefix, target, eos).backward()
                guide = [p.grad.detach().clone() for p in params]
                est(params, greedy_cost(prefix, refs), guide=guide)
                if method == "mgs_clip":
                    clip_hard(params, cfg.mgs_clip_gamma)
                opt.step()
            return update, float(cfg.mgs_candidates * cfg.batch_size)

        if method == "evolution_strategies":
            est = estimators.get("evolution_strategies", num_directions=cfg.es_directions,
                                 sigma=cfg.es_sigma)
            opt = self._optimizer(params, cfg.es_lr)

            def update(prefix, target, refs):
                est(params, greedy_cost(prefix, refs))
                opt.step()
            return update, float(2 * cfg.es_directions * cfg.batch_size)

        raise NotImplementedError(f"{self.name}: method {method!r} is listed but has no update")

    # -- the contract -----------------------------------------------------------------------
    def run(self, method: str, seed: int = 0, device: str = "cpu") -> Run:
        self.check_method(method)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"training task {self.name!r}: seed must be an int >= 0, "
                             f"got {seed!r}")
        device = torch.device(device)
        cfg = self.config
        train, valid = self.data(device)
        model = self.model(seed, device)
        # minibatches from their own generator: every method sees the same ones for a seed
        batches = torch.randint(train.prefix.shape[0], (cfg.steps, cfg.batch_size),
                                generator=torch.Generator().manual_seed(seed))
        with _seeded(seed + 1, device):
            update, evaluations = self.updater(method, model)

            def step(i: int) -> None:
                prefix, target, refs = train.take(batches[i])
                model.train()
                update(prefix, target, refs)

            points = train_on_schedule(cfg.checkpoints(), step,
                                       lambda: self.evaluate(model, valid), device)
        return Run(task=self.name, method=method, seed=seed, checkpoints=points,
                   evaluations_per_update=evaluations)


@register_training_task(
    "markov_termination",
    description="GRU LM on a Markov chain whose greedy MLE decodes never end (EOS likely but "
                "never the arg-max); metric: edit distance of greedy continuations",
    reference="Welleck & Cho, AAAI 2021 (MGS); Welleck et al., EMNLP 2020 (non-termination)")
class MarkovTermination(SequenceTask):
    """Continue a ``prefix_len``-token context of a Markov chain (see :func:`markov_chain`);
    the reference is the held-out continuation."""

    name = "markov_termination"
    description = ("continue Markov-chain text; MLE's greedy decodes loop to max_len while the "
                   "metric rewards ending")

    @staticmethod
    def vocab_size(config: SequenceConfig) -> int:
        return config.num_tokens + 2  # content tokens, EOS, BOS

    @staticmethod
    def make_data(config: SequenceConfig) -> tuple[Split, Split]:
        rng = np.random.default_rng(config.data_seed)
        trans, _ = markov_chain(config.num_tokens, config.p_next, config.p_eos, rng)
        return (_markov_data(config, config.num_train, rng, trans),
                _markov_data(config, config.num_valid, rng, trans))


@register_training_task(
    "sequence_reversal",
    description="negative control: a GRU reads a token string and writes it reversed; loss and "
                "metric agree (one right answer)",
    reference="Welleck & Cho, AAAI 2021 (MGS); Sutskever et al., NeurIPS 2014 (reversal)")
class SequenceReversal(SequenceTask):
    """Write the prefix's token string backwards; the reference is the reversed string."""

    name = "sequence_reversal"
    description = "reverse a random token string; MLE and the metric agree"
    # a partly trained checkpoint, so that there is something left to learn in `steps` updates
    defaults = {"max_len": 8, "pretrain_steps": 80}

    def check_config(self, config: SequenceConfig) -> None:
        if config.max_len <= config.max_input_len:
            raise ValueError(f"{self.name}: max_len ({config.max_len}) must exceed "
                             f"max_input_len ({config.max_input_len}) so that the reversed "
                             f"string and its EOS fit")

    @staticmethod
    def vocab_size(config: SequenceConfig) -> int:
        return config.num_tokens + 4  # content tokens, EOS, BOS, SEP, PAD

    @staticmethod
    def make_data(config: SequenceConfig) -> tuple[Split, Split]:
        rng = np.random.default_rng(config.data_seed)
        return (_reversal_data(config, config.num_train, rng),
                _reversal_data(config, config.num_valid, rng))
