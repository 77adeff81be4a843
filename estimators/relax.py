"""RELAX (Grathwohl et al. 2018, "Backpropagation through the void: optimizing control variates
for black-box gradient estimation"), for Bernoulli and OneHotCategorical (alone or in Independent).

REBAR's estimator with a learned control variate (see ``estimators/control_variates.py`` for the
conditional perturbation z̃ and the surrogate)::

    ĝ = [f(b) - c_φ(z̃)] ∇_θ log p(b) + ∇_θ c_φ(z) - ∇_θ c_φ(z̃),
    c_φ(z) = η f(σ_λ(z)) + r_ρ(σ_λ(z)),

the paper's RELAX with a REBAR-style term: φ = (η, log λ, ρ), r_ρ a small MLP on the relaxed sample.
ĝ is unbiased for any φ that does not depend on the current draw. Since ``E[ĝ]`` does not depend on
φ, ``∂Var(ĝ)/∂φ = ∂E[||ĝ||²]/∂φ``: every call (in training mode, the default) computes ĝ with
``create_graph=True`` and, after forming the estimate it returns, takes one Adam step (``lr``) on
the mean over batch elements of ``||ĝ||²``. ``est.eval()`` freezes φ.

**The network** ``r_ρ``: ``Linear(E, hidden) -> tanh -> Linear(hidden, 1)``, where E is the number
of elements of one relaxed sample (``dist.event_shape.numel()``: 1 for a batch of scalar
Bernoullis, D for ``Independent(Bernoulli)`` over D, C·D for D categoricals of C classes). Its
input is the relaxed sample flattened over the event; one network is shared by every batch element.
It is built lazily on the first call, on the logits' device, in float64 for float64 logits and in
float32 otherwise (half-precision inputs are cast to float32 and its output back); a later call
with a different E rebuilds it (and its optimiser state) from scratch. Its last layer starts at
zero, so an untrained RELAX is REBAR with η = ``eta`` and λ = ``temperature``. η and log λ exist
from construction, so the estimator is stateful before its first call (the harness warms it up);
``load_state_dict`` rebuilds the network from the saved shapes.

**Cost.** ``evaluations_per_sample = 3`` f evaluations (f(b), f(σ_λ(z)), f(σ_λ(z̃))) plus two
network evaluations per sample, backward passes through f at relaxed samples and, when training, a
second-order backward.
"""
from __future__ import annotations

import torch

from . import register
from .checks import integer, number
from .control_variates import LearnedControlVariate
from .relaxed import _check_temperature

__all__ = ["Relax"]


@register
class Relax(LearnedControlVariate):
    """RELAX: score function with a learned control variate eta f(sig_lambda(z)) +
    MLP(sig_lambda(z)), trained online on the squared estimate"""

    name = "relax"
    display_name = "RELAX"
    reference = "Grathwohl et al. 2018"

    def __init__(self, temperature: float = 0.5, eta: float = 1.0, hidden: int = 16,
                 lr: float = 0.01):
        super().__init__()
        temperature = _check_temperature("relax", temperature)
        self.hidden = integer("relax", "hidden", hidden, minimum=1)
        self.lr = number("relax", "lr", lr, low=0.0, low_open=True)
        self.eta = torch.nn.Parameter(torch.tensor(number("relax", "eta", eta)))
        self.log_temperature = torch.nn.Parameter(torch.tensor(temperature).log())
        self.net: torch.nn.Sequential | None = None
        self.register_buffer("adam_step", torch.zeros((), dtype=torch.long))
        for i, p in enumerate(self.trained_parameters()):
            self._moments(i, p)

    def _build(self, inputs: int, device, dtype) -> None:
        net = torch.nn.Sequential(torch.nn.Linear(inputs, self.hidden), torch.nn.Tanh(),
                                  torch.nn.Linear(self.hidden, 1))
        torch.nn.init.zeros_(net[2].weight)
        torch.nn.init.zeros_(net[2].bias)
        self.net = net.to(device=device, dtype=dtype)
        for i, p in enumerate(self.trained_parameters()):  # fresh optimiser state for all of φ
            m, v = self._moments(i, p)
            m.zero_()
            v.zero_()
        self.adam_step.zero_()

    def trained_parameters(self):
        return [self.eta, self.log_temperature] + ([] if self.net is None
                                                   else list(self.net.parameters()))

    def temperature_value(self, like):
        return self.log_temperature.to(like).exp()

    def control(self, soft, f, dist, k, like):
        inputs = dist.event_shape.numel()
        if self.net is None or self.net[0].in_features != inputs:
            dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
            self._build(inputs, like.device, dtype)
        w = self.net[0].weight
        flat = soft.reshape(k, *dist.batch_shape, inputs).to(w.dtype)
        learned = self.net(flat).squeeze(-1).to(like.dtype)
        return self.eta.to(like) * self.costs(f, soft, dist, k) + learned

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        weight = state_dict.get(prefix + "net.0.weight")
        if weight is not None and (self.net is None or self.net[0].weight.shape != weight.shape):
            self.hidden = weight.shape[0]
            self._build(weight.shape[1], weight.device, weight.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
