"""The two sequence tasks (registered): ``markov_termination`` and ``sequence_reversal``, on the
shared :class:`SequenceTask` machinery."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

import estimators

from ..checks import check_seed
from ..training import Run, TrainingTask, register_training_task, train_on_schedule
from .config import DataConfig, SequenceConfig
from .data import Split, dataset, markov_chain, markov_data, reversal_data
from .methods import Update, UpdateMethods, updater
from .model import GRUModel, as_lists, decode, decoded_lengths, nll, pretrained, seeded

__all__ = ["SequenceTask", "MarkovTermination", "SequenceReversal"]


class SequenceTask(TrainingTask):
    """Shared machinery of the sequence tasks; subclasses define the data (:meth:`make_data`)."""

    metric = "normalised edit distance of greedy decodes to the reference (lower is better)"
    higher_is_better = False
    methods = UpdateMethods(("mle", "pg", "pg_clip", "mgs", "mgs_clip", "evolution_strategies"))
    checkpoint_measures = ("nll", "nontermination", "avg_length")
    defaults: dict[str, object] = {}  # a subclass's own defaults for SequenceConfig options

    def __init__(self, **options):
        config = SequenceConfig.from_options(self.name, **{**self.defaults, **options})
        self.config = config.checked(self.name)
        self.check_config(self.config)
        self._edit = estimators.get_metric("edit_distance", reduction="none")

    def schedule(self) -> list[int]:
        return list(self.config.checkpoints())

    # -- subclass hooks ---------------------------------------------------------------------
    def check_config(self, config: SequenceConfig) -> None:
        """Task-specific checks of the options (raise ValueError)."""

    @staticmethod
    def make_data(config: DataConfig) -> tuple[Split, Split]:
        raise NotImplementedError

    @staticmethod
    def vocab_size(config: DataConfig) -> int:
        raise NotImplementedError

    # -- pieces -----------------------------------------------------------------------------
    @property
    def eos(self) -> int:
        return self.config.data.num_tokens

    def costs(self, tokens: torch.Tensor, refs: Sequence[Sequence[int]]) -> np.ndarray:
        """Per-sequence normalised edit distance of decodes [B, T] to ``refs`` (float64 [B])."""
        lengths, _ = decoded_lengths(tokens, self.eos)
        return self._edit(as_lists(tokens, lengths), list(refs))

    def model(self, seed: int, device="cpu") -> GRUModel:
        """A fresh copy of the MLE-pretrained model of ``seed``."""
        cls, cfg = type(self), self.config
        vocab = cls.vocab_size(cfg.data)
        with seeded(seed, torch.device("cpu")):  # construction draws an init we overwrite
            model = GRUModel(vocab, cfg.model.embed, cfg.model.hidden)
        model.load_state_dict(pretrained(cls.make_data, vocab, cfg.data, cfg.model, seed))
        return model.to(device)

    def data(self, device="cpu") -> tuple[Split, Split]:
        """(train, valid) splits on ``device`` (valid cut to ``eval_size``)."""
        train, valid = dataset(type(self).make_data, self.config.data)
        return train.to(device), valid.head(self.config.run.eval_size).to(device)

    def evaluate(self, model: GRUModel, split: Split) -> dict[str, float]:
        """Held-out measures: loss = nll (teacher forced), metric and termination of greedy
        decodes."""
        model.eval()
        with torch.no_grad():
            loss = float(nll(model, split.prefix, split.target, self.eos))
        tokens = decode(model, split.prefix, self.config.data.max_len)
        lengths, ended = decoded_lengths(tokens, self.eos)
        metric = float(np.mean(self._edit(as_lists(tokens, lengths), list(split.refs))))
        return {"loss": loss, "metric": metric, "nll": loss,
                "nontermination": float((~ended).float().mean()),
                "avg_length": float(lengths.float().mean())}

    def updater(self, method: str, model: GRUModel) -> tuple[Update, float]:
        """``(update, decodes per update)``: ``update(prefix, target, refs)`` makes one step of
        ``method`` on a minibatch (see :mod:`suite.train_sequence.methods`)."""
        return updater(self, method, model)

    # -- the contract -----------------------------------------------------------------------
    def run(self, method: str, seed: int = 0, device: str = "cpu") -> Run:
        self.check_method(method)
        seed = check_seed(self.name, seed)
        device = torch.device(device)
        run = self.config.run
        train, valid = self.data(device)
        model = self.model(seed, device)
        # minibatches from their own generator: every method sees the same ones for a seed
        batches = torch.randint(train.prefix.shape[0], (run.steps, run.batch_size),
                                generator=torch.Generator().manual_seed(seed))
        with seeded(seed + 1, device):
            update, evaluations = self.updater(method, model)

            def step(i: int) -> None:
                prefix, target, refs = train.take(batches[i])
                model.train()
                update(prefix, target, refs)

            points = train_on_schedule(self.config.checkpoints(), step,
                                       lambda: self.evaluate(model, valid), device)
        return Run(task=self.name, method=method, seed=seed, checkpoints=points,
                   evaluations_per_update=getattr(update, "evaluations", evaluations))


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
    def vocab_size(config: DataConfig) -> int:
        return config.num_tokens + 2  # content tokens, EOS, BOS

    @staticmethod
    def make_data(config: DataConfig) -> tuple[Split, Split]:
        rng = np.random.default_rng(config.data_seed)
        trans, _ = markov_chain(config.num_tokens, config.p_next, config.p_eos, rng)
        return (markov_data(config, config.num_train, rng, trans),
                markov_data(config, config.num_valid, rng, trans))


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
        data = config.data
        if data.max_len <= data.max_input_len:
            raise ValueError(f"{self.name}: max_len ({data.max_len}) must exceed "
                             f"max_input_len ({data.max_input_len}) so that the reversed "
                             f"string and its EOS fit")

    @staticmethod
    def vocab_size(config: DataConfig) -> int:
        return config.num_tokens + 4  # content tokens, EOS, BOS, SEP, PAD

    @staticmethod
    def make_data(config: DataConfig) -> tuple[Split, Split]:
        rng = np.random.default_rng(config.data_seed)
        return (reversal_data(config, config.num_train, rng),
                reversal_data(config, config.num_valid, rng))
