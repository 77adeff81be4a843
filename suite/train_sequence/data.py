"""The sequence tasks' data: held-out splits of (prefix, continuation) pairs, built once per
process.

Token ids: ``0..num_tokens-1`` are content tokens, ``num_tokens`` is EOS; BOS, SEP and PAD follow
as each task needs them (see the tasks' ``vocab_size``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from .config import DataConfig

__all__ = ["IGNORE", "Split", "markov_chain", "markov_data", "reversal_data", "dataset"]

IGNORE = -100  # target of positions that carry no loss (torch's default ignore_index)


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


def markov_data(config: DataConfig, num: int, rng: np.random.Generator,
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


def reversal_data(config: DataConfig, num: int, rng: np.random.Generator) -> Split:
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


@functools.lru_cache(maxsize=8)
def dataset(make_data, config: DataConfig) -> tuple[Split, Split]:
    """``make_data(config)`` -> (train, valid) on the CPU, built once per process and data
    configuration (the run and method options are not part of the key)."""
    return make_data(config)
