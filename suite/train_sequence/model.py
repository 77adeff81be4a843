"""The sequence tasks' model: a GRU language model, its decoding, and its MLE pretraining
(computed once per process per data, model and seed)."""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from .config import DataConfig, ModelConfig
from .data import IGNORE, dataset

__all__ = ["GRUModel", "decode", "decoded_lengths", "as_lists", "sampled_targets", "nll",
           "seeded", "pretrained"]


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


def as_lists(tokens: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    # the metric (rapidfuzz) takes Python sequences: one transfer, then slicing
    return [row[:k] for row, k in zip(tokens.tolist(), lengths.tolist())]


def sampled_targets(tokens: torch.Tensor, lengths: torch.Tensor, ended: torch.Tensor,
                     eos: int) -> torch.Tensor:
    """Targets that score decoded tokens: the tokens, EOS where one was produced, then IGNORE."""
    pos = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    target = torch.where(pos < lengths[:, None], tokens, torch.full_like(tokens, IGNORE))
    at_eos = (pos == lengths[:, None]) & ended[:, None]
    return torch.where(at_eos, torch.full_like(tokens, eos), target)


def nll(model: GRUModel, prefix: torch.Tensor, target: torch.Tensor, eos: int) -> torch.Tensor:
    """Mean per-token teacher-forced NLL of the continuation (EOS included)."""
    logits = model(prefix, target, eos)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=IGNORE)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Seed the global RNG (MGS and ES draw from it) without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@functools.lru_cache(maxsize=16)
def pretrained(make_data, vocab: int, data: DataConfig, model: ModelConfig,
               seed: int) -> dict[str, torch.Tensor]:
    """The MLE-pretrained weights (CPU state dict) for ``seed``, computed once per process: Adam
    with its step decayed linearly to 0 on the training split of ``make_data(data)``."""
    train, _ = dataset(make_data, data)
    eos = data.num_tokens
    with seeded(seed, torch.device("cpu")):
        net = GRUModel(vocab, model.embed, model.hidden)
        opt = torch.optim.Adam(net.parameters(), lr=model.pretrain_lr)
        # decay to 0, so that the checkpoint sits near the MLE instead of bouncing around it
        decay = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: 1 - i / max(model.pretrain_steps, 1))
        for _ in range(model.pretrain_steps):
            idx = torch.randint(train.prefix.shape[0], (model.pretrain_batch_size,))
            opt.zero_grad(set_to_none=True)
            nll(net, train.prefix[idx], train.target[idx], eos).backward()
            opt.step()
            decay.step()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
