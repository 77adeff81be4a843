"""``estibench new-plugin NAME [--dir DIR]``: a pip-installable plugin package to start from.

:func:`write_plugin` writes, into a new folder::

    DIR/
      pyproject.toml          entry points in the groups estibench.estimators and estibench.tasks
      README.md               what is where, and the commands to install, check and benchmark it
      NAME/__init__.py
      NAME/estimator.py       an unbiased estimator (REINFORCE with a running-mean baseline,
                              written from scratch) with every declarable attribute shown and
                              commented
      NAME/task.py            a gradient task NAME_toy with its exact gradient (enumeration)
      tests/test_NAME.py      the plugin's own tests: ``estibench check`` and the exact gradient

It installs with ``pip install -e DIR`` and passes ``estibench check NAME`` as written
(``tests/test_plugin_template.py`` installs it and checks both). The README's sections "Adding an
estimator" and "Adding a task" document every attribute and option the template shows.
"""
from __future__ import annotations

import keyword
import os
import re
import shutil
import string
import uuid
from pathlib import Path

__all__ = ["write_plugin", "check_name", "next_steps", "plugin_names", "FILES"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def plugin_names(name: str) -> dict[str, str]:
    """What a plugin called ``name`` registers and ships: its package (``name``), its estimator
    (``name``), its task (``name_toy``) and its distribution (``name`` with ``-`` for ``_``)."""
    return {"package": name, "estimator": name, "task": f"{name}_toy",
            "distribution": name.replace("_", "-")}


def check_name(name: object) -> str:
    """``name`` if a plugin can be called that, else a ValueError that says why: it must be a
    Python identifier in ASCII (it is the package's and the estimator's name), not a keyword,
    not a module Python can already import (the package would shadow it, or be shadowed), and
    not a name an estimator or task is already registered under (the plugin would fail to
    load)."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"plugin name {name!r} is not a Python identifier: use letters, digits "
                         f"and underscores, not starting with a digit (e.g. my_estimator); it "
                         f"names the plugin's package and its estimator")
    if keyword.iskeyword(name):
        raise ValueError(f"plugin name {name!r} is a Python keyword; choose another "
                         f"(e.g. {name}_estimator)")
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        where = spec.origin or ", ".join(spec.submodule_search_locations or []) or "built in"
        raise ValueError(f"plugin name {name!r} is already an importable module ({where}); "
                         f"choose a name no installed package uses (e.g. {name}_plugin)")
    _check_unregistered(name)
    return name


def _check_unregistered(name: str) -> None:
    """A ValueError when the plugin's estimator or task name is taken (built-ins and installed
    plugins); nothing when the registries cannot be read (that is for ``estibench list``)."""
    names = plugin_names(name)
    try:
        import estimators
        taken = name in estimators.ESTIMATORS
    except Exception:  # noqa: BLE001 - a broken environment is not this command's finding
        taken = False
    if taken:
        raise ValueError(f"an estimator is already registered as {name!r} "
                         f"({estimators.info(name).factory.__module__}); choose another name")
    try:
        import suite  # noqa: F401 - registers the built-in tasks
        from suite.registries import TASKS
        taken = names["task"] in TASKS
    except Exception:  # noqa: BLE001
        taken = False
    if taken:
        raise ValueError(f"a task is already registered as {names['task']!r}; choose another "
                         f"plugin name")


def write_plugin(name: str, folder: str | os.PathLike | None = None) -> Path:
    """Write the plugin package ``name`` into ``folder`` (default ``./name``), which must not
    exist yet; return the folder, absolute. The files are written into a temporary folder
    beside it and moved into place, so a failure leaves nothing behind. Raises ValueError for a
    bad name (:func:`check_name`) and FileExistsError for an existing folder."""
    check_name(name)
    target = Path(name if folder is None else folder).expanduser().absolute()
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"{target} already exists; choose a folder that does not "
                              f"(--dir DIR) or remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    names = plugin_names(name)
    values = {"name": name, "task": names["task"], "distribution": names["distribution"]}
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir()  # beside the target (same file system) and with the umask's permissions
    try:
        for relative, text in FILES.items():
            path = staging / string.Template(relative).substitute(values)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(string.Template(text).substitute(values), encoding="utf-8")
        os.rename(staging, target)  # fails, rather than merges, if the folder appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def next_steps(name: str, folder: str | os.PathLike) -> str:
    """What to run after :func:`write_plugin`, as the command prints it."""
    task = plugin_names(name)["task"]
    return "\n".join([
        f"wrote the estibench plugin {name!r} to {folder}; next:",
        f"  pip install -e {folder}",
        f"  estibench list          (shows {name} and {task})",
        f"  estibench check {name}",
        f"  estibench run --estimators {name},score_function:baseline=loo --tasks {task}",
        f"then edit {name}/estimator.py and {name}/task.py: every attribute is commented there "
        f"and listed in estibench's README (\"Adding an estimator\", \"Adding a task\")."])


# -- the files (string.Template: $name, $task, $distribution; $$ is a dollar) ---------------------
PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "An estibench plugin: a gradient estimator ($name) and a gradient task ($task)"
requires-python = ">=3.11"
dependencies = ["estibench", "torch"]

# estibench imports these modules when it first reads a registry; importing a module runs its
# @register decorators. The entry's name ("$name") is only a label in warnings.
[project.entry-points."estibench.estimators"]
$name = "$name.estimator"

[project.entry-points."estibench.tasks"]
$name = "$name.task"

# Losses, metrics and training tasks use the groups estibench.losses, estibench.metrics and
# estibench.training_tasks in the same way.

[tool.setuptools]
packages = ["$name"]
'''

README = '''\
# $name: an estibench plugin

Written by `estibench new-plugin $name`. It registers, through the entry points in
`pyproject.toml`:

* the gradient estimator `$name` (`$name/estimator.py`): REINFORCE with a running-mean baseline,
  unbiased, for Bernoulli and categorical distributions; variants `$name` and
  `$name:baseline=false`;
* the gradient task `$task` (`$name/task.py`): six Bernoullis with a non-linear cost and its
  exact gradient by enumeration.

```bash
pip install -e .                      # or: pip install -e . --no-deps --no-build-isolation
estibench list                        # shows $name and $task
estibench check $name $name:baseline=false
pytest tests                          # the same checks, and the task's exact gradient
estibench run --estimators $name,score_function:baseline=loo --tasks $task
estibench report
```

Every attribute the estimator and the task declare is commented where it is set; estibench's
README ("Adding an estimator", "Adding a task") lists them all with their defaults.
'''

INIT = '''\
"""The estibench plugin $name: an estimator in .estimator, a gradient task in .task.

Kept empty on purpose: the entry points import the submodules, so reading the estimator registry
does not import the task's dependencies and the other way round.
"""
'''

ESTIMATOR = '''\
"""REINFORCE with a running-mean baseline ($name), an estibench estimator plugin.

For samples z_1..z_K ~ p_θ the estimate is

    ĝ = 1/K Σ_k (f(z_k) - b) ∇_θ log p_θ(z_k)

with b a running mean of the costs of earlier calls (one per batch element). b is updated only
after this call's estimate has used it, so it never depends on the samples it multiplies and ĝ
is unbiased (Williams 1992). ``$name:baseline=false`` is plain REINFORCE (b = 0).

Every fact estibench reads from an estimator is set below with what reads it; each has a
default (estibench's README, "Adding an estimator"), so delete what you do not need.

Check it (the conformance checks, unbiasedness included):

    estibench check $name
"""
from __future__ import annotations

import torch

import estimators
from estimators.base import DISCRETE, Estimator
from estimators.checks import number
from estimators.evaluations import CountsEvaluations


@estimators.register  # reads the class attributes below into the estimator registry
class RunningMeanReinforce(CountsEvaluations, Estimator):
    """REINFORCE with a running-mean baseline: E[(f(z) - b) grad log p(z)]."""

    # -- facts the registry reads (estibench list shows them) ---------------------------------
    #: the registered name, as specs and commands spell it (no ':' or ','): estimators.get(name),
    #: estibench check NAME, estibench run --estimators NAME
    name = "$name"
    #: the name tables and figures show (estimators.display_name(spec)); default: the name with
    #: underscores as spaces. Not inherited by a subclass registered under another name.
    display_name = "$name (REINFORCE, running mean)"
    #: display names of variant specs whose spelled-out name reads badly; other specs are spelled
    #: from their options: NAME:decay=0.5 is shown as the display_name followed by "(decay=0.5)"
    variant_names = {
        "$name:baseline=false": "$name (REINFORCE, no baseline)",
    }
    #: "gradient": est(dist, f, K) returns a surrogate loss; "update": an update-search estimator
    kind = "gradient"
    #: the claim estibench check tests (the mean of up to 20,000 estimates against the exact gradient)
    #: and every benchmark cell's claim test reports on; a false claim fails both
    unbiased = True
    #: the torch.distributions families it takes, alone or in Independent (classes, or names such
    #: as "Bernoulli"); the grid pairs it with the tasks of these families. DISCRETE is Bernoulli,
    #: OneHotCategorical and Categorical; ALL_FAMILIES adds Normal.
    families = DISCRETE
    #: one line for estibench list (default: the first paragraph of the class docstring)
    description = "REINFORCE with a running-mean baseline (estibench plugin template)"
    #: where the method comes from, shown by estibench list and the report
    reference = "Williams 1992"
    #: the specs the benchmark grid runs when the bare name is chosen (default: the name alone)
    variants = ("$name", "$name:baseline=false")

    # -- facts the harness reads from the class ----------------------------------------------
    #: True when it needs dist.rsample (reparameterisation): supports() then refuses the rest
    needs_rsample = False
    #: True when the gradient flows through f (relaxations, straight-through): the floor
    #: benchmark then also times it against the plain pathwise estimate. Here it does not.
    pathwise = False
    #: f evaluations per sample (CountsEvaluations): evaluations(dist, K) = K * this. Set None
    #: and override evaluations(dist, num_samples) when the count depends on the problem.
    evaluations_per_sample = 1

    # -- options: in a spec, NAME:baseline=false,decay=0.5, each is read as its annotated type ----
    def __init__(self, baseline: bool = True, decay: float = 0.9):
        super().__init__()
        self.baseline = bool(baseline)
        # a bad value is a ValueError naming the estimator, the option and the accepted range
        self.decay = number(self.name, "decay", decay, low=0.0, high=1.0, high_open=True)
        if self.baseline:
            # State lives in buffers (or parameters): it moves with .to(device) and is saved by
            # state_dict(). The harness warms an estimator with buffers or parameters up with a
            # few calls under torch.no_grad() and estimators.value_only() before measuring it.
            self.register_buffer("running_cost", torch.zeros(0))
            self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def min_samples(self) -> int:
        """The smallest num_samples it accepts (a leave-one-out baseline would need 2); the grid
        and estibench check run it at K >= this, and a smaller K is a ValueError."""
        return 1

    def max_samples(self, dist) -> int | None:
        """The largest num_samples it accepts on dist (None: no limit; sampling without
        replacement cannot draw more distinct points than the support holds)."""
        return None

    def _centred(self, cost: torch.Tensor) -> torch.Tensor:
        """``cost - b`` for the detached costs ``[K, *batch]``; then b takes these costs in, but
        only in training mode: ``est.eval()`` freezes b."""
        running = self.running_cost
        if running.shape != cost.shape[1:] or running.dtype != cost.dtype:
            # the first call, or a problem of another shape or dtype: start again from b = 0
            self.running_cost = running = cost.new_zeros(cost.shape[1:])
            self.steps = torch.zeros((), dtype=torch.long, device=cost.device)
        centred = cost - running
        if self.training:
            # a bias-corrected exponential moving average (as Adam's moments): the first call
            # sets b to its mean cost; all on the device, no host sync
            self.steps += 1
            weight = (1 - self.decay) / (1 - self.decay ** self.steps.to(cost.dtype))
            running.add_(weight * centred.mean(0))
        return centred

    def estimate(self, dist, f, num_samples: int) -> torch.Tensor:
        """The contract: a scalar whose value is the Monte Carlo estimate of sum_batch E f(z)
        and whose gradient (loss.backward()) is the estimate of its gradient. The base class has
        already checked dist's family and num_samples (forward())."""
        z = dist.sample((num_samples,))  # [K, *batch, *event], no gradient
        cost = self.costs(f, z, dist, num_samples)  # f(z), checked: [K, *batch], real, finite
        log_p = dist.log_prob(z)  # [K, *batch], differentiable in dist's parameters
        weight = self._centred(cost.detach()) if self.baseline else cost.detach()
        # log_p - log_p.detach() is 0 with the gradient of log p: the value is mean_k f(z_k),
        # the gradient mean_k (f(z_k) - b) grad log p(z_k) (and f's own parameters get the
        # pathwise gradient of the mean through cost)
        return (cost + weight * (log_p - log_p.detach())).mean(0).sum()
'''

TASK = '''\
"""$task: a gradient task with an exact gradient, an estibench task plugin.

b ~ six independent Bernoullis (one Independent distribution), f(b) = cos(w·b) + (Σ b - 2)² / 4.
The cost couples the variables and is not linear in any of them, so no estimator is exact here
by accident. The exact gradient of E f enumerates the 2^6 points of the support.

    estibench run --estimators $name --tasks $task
"""
from __future__ import annotations

import itertools

import torch
from torch import distributions as D

from suite.taskbase import GradientTask, Problem, register_task


def cost(b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """f(b) for samples ``[..., dims]``: one cost per sample, ``[...]``."""
    return torch.cos(b @ w) + (b.sum(-1) - 2) ** 2 / 4


@register_task(
    # the registered name: estibench run --tasks NAME; its options in a spec: NAME:dims=4
    "$task",
    family="Bernoulli",  # required: the grid pairs the task with estimators of this family
    description="cos(w.b) + (sum b - 2)^2 / 4 over 6 Bernoullis (Independent); exact gradient by "
                "enumeration",  # required: one line for estibench list
    reference="estibench plugin template",
    bias_target=0.1,  # the relative bias the claim test aims to detect (0.1 toys, 0.25 VAEs)
    exact="enumeration",  # how reference() is exact ("closed form", "enumeration"): shown in lists
    display_name="$name toy (6 Bernoullis)",  # the name tables and figures show
)
class Toy(GradientTask):
    """A task is built once per benchmark run (asv's setup_cache) and pickled: keep tensors and
    numbers on it, and build functions (f) in problem()."""

    #: the most replicates R one cell draws in one vectorised call
    replicates = 4000
    #: never fewer replicates than this, however costly the estimator
    min_replicates = 16
    #: caps R x (sample rows f sees per estimate), so costly estimators get fewer replicates
    row_budget = 2 ** 18
    #: the claim test may spend claim_budget = claim_factor x row_budget f evaluations per cell
    claim_factor = 16

    def __init__(self, dims: int = 6, seed: int = 0):
        if not 1 <= int(dims) <= 16:
            raise ValueError(f"{self.name}: option dims must be an int in [1, 16] (the exact "
                             f"gradient enumerates 2^dims points), got {dims!r}")
        self.dims = int(dims)
        g = torch.Generator().manual_seed(seed)
        self.logits = torch.randn(self.dims, generator=g, dtype=torch.float64)
        self.w = torch.randn(self.dims, generator=g, dtype=torch.float64)

    def problem(self, replicates: int, device="cpu", dtype=torch.float32) -> Problem:
        """R independent copies in one batch: the leaves are [R, ...] tensors that require grad;
        after est(dist, f, K).backward() their .grad holds R independent estimates."""
        leaf = self.logits.to(device, dtype).expand(replicates, self.dims).clone()
        leaf.requires_grad_()
        w = self.w.to(device, dtype)
        return Problem([leaf], D.Independent(D.Bernoulli(logits=leaf), 1), lambda b: cost(b, w))

    def _reference(self) -> torch.Tensor:
        """The exact gradient of E f for ONE replicate, flattened over the leaves in order
        (reference() caches it as float64 on the CPU): sum p(b) f(b) over every b in {0, 1}^D,
        differentiated by autograd."""
        logits = self.logits.clone().requires_grad_()
        support = torch.tensor(list(itertools.product((0.0, 1.0), repeat=self.dims)),
                               dtype=torch.float64)
        log_p = D.Independent(D.Bernoulli(logits=logits), 1).log_prob(support)
        (grad,) = torch.autograd.grad((log_p.exp() * cost(support, self.w)).sum(), logits)
        return grad
'''

TESTS = '''\
"""The plugin's own tests (pip install -e . first, then: pytest tests)."""
import torch

import estimators
from estimators import conformance
from suite.taskbase import build_task


def test_estibench_check_passes():
    results = conformance.run(["$name", "$name:baseline=false"])
    failed = [r for r in results if not r.passed]
    assert not failed, conformance.format_table(failed)


def test_the_task_reference_is_the_exact_gradient():
    task = build_task("$task")
    problem = task.problem(1, dtype=torch.float64)
    estimators.get("exact")(problem.dist, problem.f, 1).backward()
    assert torch.allclose(problem.flat_grad()[0], task.reference())
'''

#: relative path (a template) -> text (a template)
FILES = {"pyproject.toml": PYPROJECT, "README.md": README, "$name/__init__.py": INIT,
         "$name/estimator.py": ESTIMATOR, "$name/task.py": TASK,
         "tests/test_$name.py": TESTS}
