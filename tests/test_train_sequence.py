"""Tests of the sequence-generation training tasks (suite/train_sequence.py), on tiny configs.

The one statistical test (the chain's EOS rate) fixes its data seed and takes its tolerance from
the failure rate ``ALPHA`` under the normal approximation (Note [Randomized statistical tests]).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from statcheck import ALPHA  # noqa: E402  (the one stated failure rate)

from suite.registries import TRAINING_TASKS
from suite.train_sequence import (
    IGNORE,
    DataConfig,
    MarkovTermination,
    SequenceConfig,
    SequenceReversal,
    decode,
    decoded_lengths,
    markov_chain,
)
from suite.training import REQUIRED_KEYS, Run

TASKS = ("markov_termination", "sequence_reversal")
METHODS = ("mle", "pg", "pg_clip", "mgs", "mgs_clip", "evolution_strategies")
TINY = dict(num_train=64, num_valid=16, eval_size=16, embed=4, hidden=8, pretrain_steps=5,
            pretrain_batch_size=8, steps=3, batch_size=4, num_checkpoints=3, pg_samples=2,
            mgs_candidates=2, es_directions=1)
EXTRAS = ("nll", "nontermination", "avg_length")


def tiny(name: str, **options):
    return TRAINING_TASKS.get(name, **{**TINY, **options})


# -- registration and schema -----------------------------------------------------------------
@pytest.mark.parametrize("name", TASKS)
def test_registered_with_the_methods(name):
    task = TRAINING_TASKS.get(name)
    assert task.name == name and task.methods == METHODS
    assert task.higher_is_better is False and task.seeds == (0, 1, 2)
    assert TRAINING_TASKS.entry(name).reference


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", TASKS)
def test_short_run_of_each_method_follows_the_run_schema(name, method):
    task = tiny(name)
    run = task.run(method, seed=0)
    assert isinstance(run, Run) and (run.task, run.method, run.seed) == (name, method, 0)
    assert [p["step"] for p in run.checkpoints] == [0.0, 2.0, 3.0] == task.config.checkpoints()
    assert run.measures() == list(REQUIRED_KEYS) + list(EXTRAS)
    seconds = [p["seconds"] for p in run.checkpoints]
    assert seconds[0] == 0.0 and all(b >= a for a, b in zip(seconds, seconds[1:]))
    for p in run.checkpoints:
        assert all(math.isfinite(v) for v in p.values())
        assert 0.0 <= p["metric"] <= 1.0 and 0.0 <= p["nontermination"] <= 1.0
        assert 0.0 <= p["avg_length"] <= task.config.data.max_len
        assert p["loss"] == p["nll"] > 0
    b = task.config.run.batch_size
    expected = {"mle": 0, "pg": 2 * b, "pg_clip": 2 * b, "mgs": 2 * b, "mgs_clip": 2 * b,
                "evolution_strategies": 2 * b}[method]
    assert run.evaluations_per_update == expected


@pytest.mark.parametrize("name", TASKS)
def test_every_method_starts_from_the_same_checkpoint_and_moves(name):
    task = tiny(name)
    runs = {m: task.run(m, seed=1) for m in ("mle", "pg", "mgs")}
    first = {k: v for k, v in runs["mle"].checkpoints[0].items()}
    for run in runs.values():
        assert run.checkpoints[0] == first
        assert run.checkpoints[-1]["nll"] != first["nll"]  # the update did something


@pytest.mark.parametrize("name", TASKS)
def test_deterministic_per_seed_and_rng_untouched(name):
    task = tiny(name)
    state = torch.get_rng_state()
    a, b = task.run("mgs", seed=2), task.run("mgs", seed=2)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    drop = lambda run: [{k: v for k, v in p.items() if k != "seconds"} for p in run.checkpoints]
    assert drop(a) == drop(b)
    assert drop(a) != drop(task.run("mgs", seed=3))
    # a fresh task with the same options (new instance, cached checkpoint) agrees too
    assert drop(tiny(name).run("pg", seed=2)) == drop(task.run("pg", seed=2))


# -- the markov task's premise ---------------------------------------------------------------
def test_markov_chain_has_a_cycle_and_eos_is_never_the_argmax():
    trans, successor = markov_chain(8, 0.65, 0.3, np.random.default_rng(0))
    np.testing.assert_allclose(trans.sum(1), 1.0)
    assert sorted(successor.tolist()) == list(range(8))
    state, seen = 0, set()
    for _ in range(8):  # one cycle through every state
        seen.add(state)
        state = int(successor[state])
    assert seen == set(range(8)) and state == 0
    assert (trans.argmax(1) == successor).all()
    assert (np.sort(trans, 1)[:, -2] == 0.3).all()  # EOS is the runner-up everywhere


def test_markov_data_follows_the_chain():
    cfg = DataConfig(num_train=3000)
    train, _ = MarkovTermination.make_data(cfg)
    assert (train.prefix[:, 0] == cfg.num_tokens + 1).all()  # BOS
    assert ((train.prefix[:, 1:] >= 0) & (train.prefix[:, 1:] < cfg.num_tokens)).all()
    # each continuation step ends with probability p_eos
    target = train.target
    steps = int((target != IGNORE).sum())
    eos = int((target == cfg.num_tokens).sum())
    se = math.sqrt(cfg.p_eos * (1 - cfg.p_eos) / steps)
    assert abs(eos / steps - cfg.p_eos) < float(stats.norm.isf(ALPHA / 2)) * se
    for ref, row in zip(train.refs[:50], target[:50].tolist()):
        assert list(ref) == row[:len(ref)]


def test_greedy_mle_decodes_of_the_markov_task_do_not_terminate():
    """On the default (trained) checkpoint: sampled continuations end, greedy ones loop."""
    task = MarkovTermination()
    model = task.model(seed=0)
    _, valid = task.data()
    greedy = task.evaluate(model, valid)
    assert greedy["nontermination"] > 0.9
    assert greedy["avg_length"] > 0.9 * task.config.data.max_len
    torch.manual_seed(0)
    _, ended = decoded_lengths(decode(model, valid.prefix, task.config.data.max_len, greedy=False),
                               task.eos)
    assert float(ended.float().mean()) > 0.9
    # and the chain's entropy rate bounds the NLL from below
    p = np.array([0.65, 0.3] + [0.05 / 7] * 7)
    assert greedy["nll"] > -(p * np.log(p)).sum() - 0.1


def test_reversal_data_and_references():
    cfg = SequenceConfig.from_options(**SequenceReversal.defaults).data
    train, _ = SequenceReversal.make_data(cfg)
    n = cfg.num_tokens
    for prefix, ref in zip(train.prefix[:100].tolist(), train.refs[:100]):
        body = prefix[prefix.index(n + 1) + 1:-1]  # between BOS and SEP
        assert prefix[-1] == n + 2 and all(t == n + 3 for t in prefix[:prefix.index(n + 1)])
        assert cfg.min_input_len <= len(body) <= cfg.max_input_len
        assert list(ref) == body[::-1]


def test_decoded_lengths_hand_case():
    eos = 8
    tokens = torch.tensor([[1, 2, 8, 3], [8, 8, 1, 1], [1, 2, 3, 4]])
    lengths, ended = decoded_lengths(tokens, eos)
    assert lengths.tolist() == [2, 0, 4] and ended.tolist() == [True, True, False]
    task = tiny("markov_termination")
    assert task.costs(tokens, [(1, 2), (), (1, 2, 3, 5)]).tolist() == [0.0, 0.0, 0.25]


# -- bad input ---------------------------------------------------------------------------------
def test_unknown_method_suggests_and_lists():
    with pytest.raises(ValueError, match=r"unknown method 'mgs_clipped'.*did you mean 'mgs_clip'.*"
                                         r"available: mle, pg"):
        tiny("markov_termination").run("mgs_clipped")


@pytest.mark.parametrize("options, error, match", [
    (dict(hiden=4), TypeError, "unknown option.*'hiden'.*hidden"),
    (dict(steps=0), ValueError, "steps must be an int >= 1"),
    (dict(steps=2.5), TypeError, "steps must be an int"),
    (dict(mgs_sigma=0.0), ValueError, "mgs_sigma must be a finite number > 0"),
    (dict(mgs_mixture=1.5), ValueError, r"mgs_mixture must be in \[0, 1\]"),
    (dict(p_eos=0.7), ValueError, "p_eos < p_next"),
    (dict(optimizer="rmsprop"), ValueError, "optimizer must be one of adam, sgd"),
    (dict(mgs_proposal_correction="yes"), TypeError, "True or False"),
    (dict(min_input_len=6), ValueError, "min_input_len"),
])
def test_bad_options(options, error, match):
    with pytest.raises(error, match=match):
        TRAINING_TASKS.get("markov_termination", **options)


def test_reversal_needs_room_for_the_output():
    with pytest.raises(ValueError, match="max_len .* must exceed max_input_len"):
        TRAINING_TASKS.get("sequence_reversal", max_len=5)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        tiny("sequence_reversal").run("mle", seed=seed)


def test_checkpoint_schedule():
    assert SequenceConfig().checkpoints() == [0, 13, 27, 40]  # the suite's default: 4
    assert SequenceConfig.from_options(num_checkpoints=6).checkpoints() == [0, 8, 16, 24, 32, 40]
    assert SequenceConfig.from_options(steps=3, num_checkpoints=6).checkpoints() == [0, 1, 2, 3]
    assert SequenceConfig.from_options(steps=10, num_checkpoints=2).checkpoints() == [0, 10]


def test_options_are_routed_to_their_parts_and_the_caches_ignore_the_rest():
    """The data cache is keyed by the data part and the checkpoint by data and model parts, so a
    sweep over a method's options reuses both (same objects)."""
    cfg = SequenceConfig.from_options(hidden=8, steps=3, mgs_sigma=0.1, num_train=64)
    assert (cfg.model.hidden, cfg.run.steps, cfg.methods.mgs_sigma, cfg.data.num_train) == (
        8, 3, 0.1, 64)
    assert SequenceConfig.option_names()[:2] == ["num_tokens", "num_train"]
    assert cfg.checked("t") == cfg
    assert type(SequenceConfig.from_options(steps=np.int64(3)).checked("t").run.steps) is int
    a, b = tiny("markov_termination"), tiny("markov_termination", mgs_sigma=0.2, steps=4)
    assert a.data()[0].prefix is b.data()[0].prefix
    assert all(torch.equal(x, y) for x, y in zip(a.model(0).parameters(),
                                                  b.model(0).parameters()))


def test_a_registered_update_estimator_joins_the_sequence_tasks(monkeypatch):
    """Issue 12: a new kind="update" estimator (a plugin's, say) is trained by the sequence tasks
    with no change to them; ESTIBENCH_ESTIMATORS narrows the registry's ones."""
    import estimators
    from estimators.update_search import EvolutionStrategies

    class TwoSidedSearch(EvolutionStrategies):
        """A scratch update-search estimator: antithetic random search under another name."""

        name = "scratch_update_search"

    estimators.register(TwoSidedSearch)
    try:
        task = tiny("markov_termination")
        assert task.methods == METHODS + ("scratch_update_search",)
        run = task.run("scratch_update_search", seed=0)
        assert all(math.isfinite(v) for p in run.checkpoints for v in p.values())
        # its default 8 antithetic directions: 16 task-loss evaluations of a batch of 4
        assert run.evaluations_per_update == 16 * task.config.run.batch_size
        monkeypatch.setenv("ESTIBENCH_ESTIMATORS", "score_function")
        assert tiny("markov_termination").methods == METHODS
    finally:
        estimators.ESTIMATORS.unregister("scratch_update_search")
