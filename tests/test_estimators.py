"""Generic estimator tests, driven by the registry.

Every registered gradient estimator (each of its benchmark ``variants``) is picked up here, and
its claims (``unbiased``, ``families``) are read from the registry: a new built-in needs only its
module (and its name in ``BUILTIN``, the golden list of what the package ships).

Note [Randomized statistical tests] (as in torch's test_distributions.py): each statistical test
fixes its seed and derives its tolerance from a stated failure rate ``ALPHA``: the probability
that the test would fail for a correct estimator, under the normal approximation of a mean of R
i.i.d. estimates, with a Bonferroni correction over the coordinates compared.
"""
from __future__ import annotations

import pytest
import torch
from scipy import stats
from statcheck import ALPHA, EXTRA_SPECS, z_crit
from torch import distributions as D

import estimators
from estimators import conformance
from estimators.conformance import R, bernoulli_batch, estimates, mean_test
from estimators.relaxed import gumbel_max_sample, hard_sample, relaxed_sample

#: golden list of the built-in gradient estimators (independent of the code under test)
BUILTIN = {"score_function", "reparam", "gumbel_softmax", "straight_through",
           "straight_through_gumbel", "exact", "rebar", "relax", "arm", "disarm", "muprop",
           "gumbel_rao", "reinmax", "unordered_set", "indecater", "measure_valued",
           "double_cv", "rodeo", "arms", "carms",
           "sum_and_sample", "gapped_straight_through", "decoupled_straight_through_gumbel"}

#: the built-ins' benchmark variants, plus any plugin named with ``pytest --estimator SPEC``
SPECS = conformance.builtin_specs() + [s for s in EXTRA_SPECS if s not in conformance.builtin_specs()]


# ---------------------------------------------------------------------------------------------
def test_builtins_are_registered_with_one_consistent_declaration():
    builtin = [n for n in estimators.available(kind="gradient")
               if estimators.info(n).factory.__module__.startswith("estimators.")]
    assert set(builtin) == BUILTIN, "a built-in was added or lost: update the golden list"
    for name in builtin:
        entry, est = estimators.info(name), estimators.get(name)
        assert entry.info["unbiased"] == est.unbiased
        assert set(entry.info["families"]) == {c.__name__ for c in est.families}
        assert entry.info["description"] and entry.info["reference"]


@pytest.mark.parametrize("check", list(conformance.CHECKS))
@pytest.mark.parametrize("spec", SPECS)
def test_conformance(spec, check):
    """The contract (shapes, dtypes, devices, determinism, bad input, supported families) and,
    for an estimator that claims it, unbiasedness against exact enumeration: the checks that
    ``estibench check SPEC`` runs."""
    results = conformance.check(spec, check)
    failed = [f"{r.case}: {r.detail}" for r in results if not r.passed]
    assert results and not failed, "\n".join(failed)


def test_the_unbiasedness_check_can_fail():
    """A deliberately biased estimator that claims unbiased=True fails the conformance check."""
    from estimators.straight_through import StraightThrough

    class FalseClaim(StraightThrough):
        name = "false_claim_st"
        unbiased = True
    try:
        estimators.register(FalseClaim)
        results = conformance.check("false_claim_st", "unbiased")
        assert any(not r.passed for r in results)
        assert all(r.passed for r in conformance.check("false_claim_st", "contract"))
    finally:
        estimators.ESTIMATORS.unregister("false_claim_st")


@pytest.mark.parametrize("biased_k", [4, 16, 64])
def test_the_unbiasedness_check_covers_every_k_the_grid_runs(biased_k, monkeypatch):
    """An estimator biased only at one K of the benchmark's grid fails ``estibench check``
    (issue 21, item 6: one biased only at K >= 16 passed when the check ran at K = 1 and 3)."""
    from estimators.score_function import ScoreFunction

    class BiasedAtK(ScoreFunction):
        name = "biased_at_k"
        unbiased = True

        def estimate(self, dist, f, num_samples):
            loss = super().estimate(dist, f, num_samples)
            if num_samples != biased_k:
                return loss
            logits = dist.logits if hasattr(dist, "logits") else next(iter(dist.mean.reshape(-1)))
            return loss + 0.2 * logits.sum()  # a bias of 0.2 per coordinate

    monkeypatch.setattr(conformance, "_FULL", biased_k == 64)  # 64: estibench check --full
    try:
        estimators.register(BiasedAtK)
        results = conformance.check("biased_at_k", "unbiased")
        failed = {r.case for r in results if not r.passed}
        assert failed and all(case.endswith(f"K={biased_k}") for case in failed), failed
    finally:
        estimators.ESTIMATORS.unregister("biased_at_k")


def test_the_check_covers_the_grids_k_axis():
    from suite import grid

    assert set(grid.DEFAULT_NUM_SAMPLES) <= set(conformance.CHECK_NUM_SAMPLES)
    assert set(grid.NUM_SAMPLES) <= set(conformance.FULL_CHECK_NUM_SAMPLES)


def test_statistical_check_detects_a_biased_estimator():
    """The check above can fail: straight-through is biased on the Bernoulli toy."""
    torch.manual_seed(0)
    problem = bernoulli_batch(R, torch.float64, "cpu")
    z, crit = mean_test(*estimates("straight_through", problem, 1))
    assert z > crit


def test_relaxation_bias_shrinks_as_temperature_falls():
    torch.manual_seed(11)
    biases, ses = [], []
    for temperature in (1.0, 0.1):
        problem = bernoulli_batch(R, torch.float64, "cpu")
        g_hat, g = estimates(f"gumbel_softmax:temperature={temperature}", problem, 1)
        biases.append(float((g_hat.mean(0) - g).norm()))
        ses.append(float((g_hat.var(0).sum() / R).sqrt()))  # se of the norm, delta bound
    crit = z_crit(1)
    assert biases[1] + crit * ses[1] < biases[0] - crit * ses[0], (biases, ses)


def test_gumbel_max_sampler_matches_categorical_chi_square():
    torch.manual_seed(5)
    probs = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.5], dtype=torch.float64)
    n = 50_000
    idx = gumbel_max_sample(probs.log(), (n,))
    counts = torch.bincount(idx, minlength=5).double()
    p_value = stats.chisquare(counts.numpy(), (probs * n).numpy()).pvalue
    assert p_value > ALPHA


def test_gumbel_max_sampler_chi_square_can_fail():
    torch.manual_seed(5)
    probs = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.5], dtype=torch.float64)
    idx = gumbel_max_sample(probs.log() / 1.1, (50_000,))  # a slightly wrong sampler
    counts = torch.bincount(idx, minlength=5).double()
    assert stats.chisquare(counts.numpy(), (probs * 50_000).numpy()).pvalue < ALPHA


@pytest.mark.parametrize("family", ["bernoulli", "onehot"])
def test_hard_samples_of_relaxations_are_exact_samples(family):
    """Rounding a binary-Concrete / Gumbel-softmax sample is an exact discrete sample, which is
    what straight_through_gumbel's forward pass relies on."""
    torch.manual_seed(6)
    n = 50_000
    if family == "bernoulli":
        p = torch.tensor([0.3], dtype=torch.float64)
        dist = D.Bernoulli(probs=p)
        hard = hard_sample(relaxed_sample(dist, n, 0.7), dist).squeeze(-1)
        counts = torch.stack([(hard == 0).sum(), (hard == 1).sum()]).double()
        expected = torch.cat([1 - p, p]) * n
    else:
        p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
        dist = D.OneHotCategorical(probs=p)
        counts = hard_sample(relaxed_sample(dist, n, 0.7), dist).sum(0)
        expected = p * n
    assert stats.chisquare(counts.numpy(), expected.numpy()).pvalue > ALPHA


def test_numpy_integer_num_samples_are_accepted():
    import numpy as np
    logits = torch.zeros(3, requires_grad=True)
    loss = estimators.get("score_function:baseline=loo")(D.Bernoulli(logits=logits),
                                                         lambda z: z, num_samples=np.int64(4))
    loss.backward()
    assert logits.grad is not None


def test_loo_with_one_sample():
    est = estimators.get("score_function:baseline=loo")
    with pytest.raises(ValueError, match="num_samples >= 2"):
        est(D.Bernoulli(logits=torch.zeros(3, requires_grad=True)), lambda z: z, num_samples=1)


def test_validation_switch_skips_the_finite_check_only():
    est = estimators.get("reparam")
    mu = torch.zeros(2, requires_grad=True)
    dist = D.Normal(mu, torch.ones(2))
    estimators.set_validation(False)
    try:
        loss = est(dist, lambda z: z * float("inf"), num_samples=2)
        assert not torch.isfinite(loss)
        with pytest.raises(ValueError, match="shape"):
            est(dist, lambda z: z.sum(), num_samples=2)
    finally:
        estimators.set_validation(True)


def test_exact_refuses_large_supports():
    dist = D.Independent(D.Bernoulli(logits=torch.zeros(20, requires_grad=True)), 1)
    assert not estimators.get("exact").supports(dist)  # harnesses skip it there
    assert estimators.get("exact", max_support=2 ** 20).supports(dist)
    with pytest.raises(ValueError, match="1048576 points, more than max_support=65536"):
        estimators.get("exact")(dist, lambda z: z.sum(-1), num_samples=1)
    loss = estimators.get("exact", max_support=2 ** 20)(dist, lambda z: z.sum(-1), 1)
    assert float(loss.detach()) == pytest.approx(10.0)


def test_temperature_must_be_positive():
    for name in ("gumbel_softmax", "straight_through_gumbel"):
        for bad in (0, -1, float("nan"), "hot"):
            with pytest.raises(ValueError, match="temperature"):
                estimators.get(name, temperature=bad)


# -- registry ----------------------------------------------------------------------------------
def test_available_and_kinds():
    names = estimators.available()
    assert names == sorted(names) and BUILTIN <= set(names)
    assert set(estimators.available(kind="gradient")) >= BUILTIN
    assert not set(estimators.available(kind="update")) & BUILTIN
    with pytest.raises(ValueError, match="kind"):
        estimators.available(kind="gradients")


def test_spec_string_equals_keywords():
    a = estimators.get("score_function:baseline=loo,decay=0.5")
    b = estimators.get("score_function", baseline="loo", decay=0.5)
    assert (a.baseline, a.decay) == (b.baseline, b.decay) == ("loo", 0.5)
    c = estimators.get("gumbel_softmax:temperature=0.25")
    assert c.temperature == 0.25


def test_unknown_names_suggest_the_closest_match():
    with pytest.raises(ValueError) as err:
        estimators.get("score_fuction")
    msg = str(err.value)
    assert "did you mean 'score_function'" in msg and "Available:" in msg and "reparam" in msg
    with pytest.raises(KeyError):
        estimators.get("gumbel_softmx")
    with pytest.raises(ValueError, match="did you mean 'loo'"):
        estimators.get("score_function", baseline="lo")
    with pytest.raises(TypeError, match="options are: baseline, decay"):
        estimators.get("score_function", temp=1.0)
    with pytest.raises(ValueError, match="key=value"):
        estimators.get("score_function:loo")


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        estimators.register("score_function")(lambda: None)


def test_stateful_estimators_are_modules():
    est = estimators.get("score_function", baseline="moving_average")
    assert isinstance(est, torch.nn.Module)
    logits = torch.zeros(3, requires_grad=True)
    est(D.Bernoulli(logits=logits), lambda z: z + 1.0, num_samples=4)
    state = est.state_dict()
    assert state["running_cost"].shape == (3,) and int(state["steps"]) == 1
    est64 = est.to(torch.float64)
    assert est64.running_cost.dtype == torch.float64
    assert list(est.parameters()) == []  # no learned parameters, but the Module API works


def test_the_moving_average_update_count_is_current_wherever_it_is_read():
    """The hot path counts updates on the host; ``steps`` and ``state_dict`` still give the
    count, a loaded state resumes from it, and the baselines without state have no ``steps``."""
    est = estimators.get("score_function", baseline="moving_average")
    logits = torch.zeros(3, requires_grad=True)
    for _ in range(3):
        est(D.Bernoulli(logits=logits), lambda z: z + 1.0, num_samples=4)
    assert int(est.steps) == 3 and int(est.state_dict()["steps"]) == 3
    fresh = estimators.get("score_function", baseline="moving_average")
    fresh.load_state_dict(est.state_dict())
    torch.testing.assert_close(fresh.running_cost, est.running_cost, rtol=0, atol=0)
    fresh(D.Bernoulli(logits=logits), lambda z: z + 1.0, num_samples=4)
    assert int(fresh.steps) == 4
    with pytest.raises(AttributeError, match="steps"):
        _ = estimators.get("score_function", baseline="loo").steps


def test_moving_average_baseline_reduces_variance_and_tracks_costs():
    torch.manual_seed(3)
    est = estimators.get("score_function", baseline="moving_average", decay=0.5)
    problem = bernoulli_batch(R, torch.float64, "cpu")
    g_ma, g = estimates_with(est, problem, k=1, warmup=10)
    torch.manual_seed(3)
    problem = bernoulli_batch(R, torch.float64, "cpu")
    g_none, _ = estimates("score_function", problem, 1)
    assert g_ma.var(0).sum() < g_none.var(0).sum()


def estimates_with(est, problem, k, warmup):
    for _ in range(warmup):
        est(problem.dist, problem.f, num_samples=k)
    for leaf in problem.leaves:
        leaf.grad = None
    est(problem.dist, problem.f, num_samples=k).backward()
    g_hat = problem.leaves[0].grad.reshape(R, -1)
    g = torch.autograd.grad(problem.exact(), problem.leaves[0])[0][0].reshape(-1)
    return g_hat, g


# -- one declaration per estimator, typed spec options ---------------------------------------
def _scratch_class(**attrs):
    from estimators.base import Estimator

    def estimate(self, dist, f, num_samples):
        return self.costs(f, dist.sample((num_samples,)), dist, num_samples).mean(0).sum()
    return type("Scratch", (Estimator,), {"estimate": estimate, **attrs})


def test_a_class_declares_its_facts_once_and_the_registry_reads_them():
    cls = _scratch_class(name="scratch_declared", unbiased=False, families=("Bernoulli",),
                         reference="test", __doc__="A scratch estimator.\n\nMore text.")
    try:
        estimators.register(cls)
        entry = estimators.info("scratch_declared")
        assert entry.info["families"] == ("Bernoulli",) and entry.info["unbiased"] is False
        assert entry.info["description"] == "A scratch estimator."
        assert cls.families == (D.Bernoulli,)  # names resolved on the class itself
        assert estimators.get("scratch_declared").supports(D.Bernoulli(logits=torch.zeros(2)))
    finally:
        estimators.ESTIMATORS.unregister("scratch_declared")


def test_decorator_facts_are_written_onto_the_class_and_a_mismatch_is_refused():
    cls = _scratch_class(name="scratch_a")
    try:
        estimators.register("scratch_a", unbiased=True, families=(D.Normal,))(cls)
        assert cls.unbiased is True and estimators.get("scratch_a").families == (D.Normal,)
        with pytest.raises(ValueError, match="declares name 'scratch_b'"):
            estimators.register("scratch_c")(_scratch_class(name="scratch_b"))
        with pytest.raises(ValueError, match="kind"):
            estimators.register(_scratch_class(name="scratch_d", kind="gradients"))
        with pytest.raises(ValueError, match="not a torch.distributions class"):
            estimators.register(_scratch_class(name="scratch_e", families=("Bernouli",)))
    finally:
        for n in ("scratch_a", "scratch_c", "scratch_d", "scratch_e"):
            estimators.ESTIMATORS.unregister(n)


@pytest.mark.parametrize("text,value", [("false", False), ("False", False), ("no", False),
                                        ("off", False), ("0", False), ("true", True),
                                        ("YES", True), ("on", True), ("1", True)])
def test_spec_booleans_are_read_by_the_declared_type(text, value):
    assert estimators.get(f"mgs:proposal_correction={text}").proposal_correction is value


@pytest.mark.parametrize("spec,needle", [
    ("mgs:proposal_correction=maybe", "proposal_correction='maybe' is not a boolean"),
    ("score_function:decay=abc", "score_function': option decay='abc' is not a number"),
    ("mgs:num_candidates=2.5", "num_candidates='2.5' is not an int"),
    ("score_function:baseline=loo:x=1", "cannot contain ':'"),
    ("score_function:baseline=loo,baseline=none", "given twice"),
    ("score_function:basline=loo", "no option 'basline'; its options are: baseline, decay"),
])
def test_bad_spec_options_name_the_option(spec, needle):
    with pytest.raises((ValueError, TypeError)) as err:
        estimators.get(spec)
    assert needle in str(err.value)


def test_typed_spec_options_keep_every_existing_spec_working():
    assert estimators.get("score_function:baseline=loo,decay=0.5").decay == 0.5
    assert estimators.get("gumbel_softmax:temperature=2").temperature == 2.0
    assert estimators.get("mgs:num_candidates=4,sigma=1e-3").num_candidates == 4
    with pytest.raises(TypeError, match="no option 'nope'"):
        estimators.get("exact", nope=1)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_an_unknown_option_names_the_estimator_and_its_options(name):
    with pytest.raises(TypeError, match=f"{name}' has no option 'bogus'; its options are"):
        estimators.get(f"{name}:bogus=1")
