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

Modules: :mod:`.config` (the options, in data / model / run / method parts), :mod:`.data`
(the two tasks' data), :mod:`.model` (the GRU, decoding, pretraining), :mod:`.methods` (one
update step per method), :mod:`.tasks` (the registered tasks).
"""
from .config import (
    DataConfig,
    MethodConfig,
    ModelConfig,
    RunConfig,
    SequenceConfig,
)
from .data import IGNORE, Split, markov_chain
from .model import GRUModel, decode, decoded_lengths, pretrained
from .tasks import MarkovTermination, SequenceReversal, SequenceTask

__all__ = ["SequenceConfig", "DataConfig", "ModelConfig", "RunConfig", "MethodConfig",
           "SequenceTask", "MarkovTermination", "SequenceReversal", "GRUModel", "Split", "IGNORE",
           "decode", "decoded_lengths", "markov_chain", "pretrained"]
