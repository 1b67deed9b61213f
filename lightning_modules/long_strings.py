"""The generalisation test on strings too long to hold: one string a^n b^(k n) c^(m n) per n, streamed.

The module's test (``SequencePredictor``) runs strings the data module has built and keeps every
step's state, which is what the figures and the per-step tables need. Counting to n = 10,000 on
a^n b^2n c^3n means 10,000 strings of up to 60,000 symbols (3e8 positions): neither the strings
nor the states fit. Here the input of string n at step t is computed from t and n (a while
t < n, then b, then c, then the next block's a as the last target), the nets' one step
(``recurrent_nets.step``) runs every string at once, only the current state is kept, and the
strings that have ended leave the batch. What is scored is what the module scores:
``Objective.right`` on ``Objective.scored`` positions, from the initial state.
"""

from __future__ import annotations

from typing import Sequence

import torch

from base.languages import A, B, C, LANGUAGES, num_symbols
from lightning_modules.objectives import Objective
from lightning_modules.recurrent_nets import Layout, Weights, initial_state, input_part, output, step

BLOCK = 64  # steps run between scoring them at once and removing the strings that have ended


def symbols_at(t: torch.Tensor | int, n: torch.Tensor, k: int, m: int, last: int = A) -> torch.Tensor:
    """The symbol at positions ``t`` (0-based; broadcast against ``n``) of each string
    a^n b^(k n) c^(m n) and ``last``: the one at t = (1 + k + m) n, the a that starts the next
    block, or the end symbol."""
    end_b = (1 + k) * n
    sym = torch.where(t < n, A, torch.where(t < end_b, B, C))
    return torch.where(t >= end_b + m * n, last, sym)


@torch.no_grad()
def wrong_per_length(layout: Layout, flat: torch.Tensor, objective: Objective, language: str, lengths: Sequence[int],
                     end_symbol: bool = False) -> torch.Tensor:
    """Each network's wrong scored positions on the string of each length: ``(R, N)`` for the R
    networks ``flat`` (R, P) and the N block lengths ``lengths``; 0 means the string is
    recognised. Every string starts from the initial state, as the module's test with
    ``data.eval_blocks=1``; with ``end_symbol`` the strings end with T (``data.end_symbol``). The steps run ``BLOCK`` at a time, keeping that block's hidden states
    (R, H, BLOCK, live strings), then the block is scored in one call."""
    k, m = LANGUAGES[language]
    S = layout.num_symbols
    last = num_symbols(language) if end_symbol else A
    R, device = flat.shape[0], flat.device
    n = torch.as_tensor(list(lengths), dtype=torch.long, device=device)
    order = torch.argsort(n, descending=True)  # the longest first: the strings that have ended are a tail
    n = n[order]
    wrong = torch.zeros(R, len(n), dtype=torch.long, device=device)
    w = Weights.of(layout, flat)
    eye = torch.eye(S, dtype=flat.dtype, device=device)
    G = w.b.shape[1]
    by_symbol = input_part(w, eye.expand(R, S, S)).permute(2, 0, 1).reshape(S, R * G)  # row s: W x + b of symbol s, every network
    state = initial_state(layout, w, len(n))
    total = (1 + k + m) * n  # positions of each string (inputs 0 .. total - 1)
    steps = int(total.max()) if len(n) else 0
    for t0 in range(0, steps, BLOCK):
        live = int((total > t0).sum())
        state, nl = tuple(s[:, :, :live] for s in state), n[:live, None]
        ts = torch.arange(t0, min(t0 + BLOCK, steps), device=device)[None]  # (1, L)
        sym, target = symbols_at(ts, nl, k, m, last), symbols_at(ts + 1, nl, k, m, last)  # (live, L)
        hidden, columns = [], sym.T.contiguous()
        for j in range(ts.shape[1]):
            xz = by_symbol.index_select(0, columns[j]).view(live, R, G).permute(1, 2, 0)  # (R, G, live); rows: a fast gather
            state, _ = step(layout, w, state, xz)
            hidden.append(state[0])
        L = len(hidden)
        logits = output(w, torch.stack(hidden, dim=2).view(R, -1, L * live)).view(R, S, L, live).permute(0, 3, 2, 1)  # (R, live, L, S)
        valid = ts < total[:live, None]
        inputs = eye[sym]  # (live, L, S)
        right = objective.right(logits, torch.where(valid, target, -100).expand(R, -1, -1), inputs.expand(R, -1, -1, -1))
        scored = objective.scored(sym != A, valid)
        wrong[:, :live] += (~right & scored).sum(-1)
    out = torch.empty_like(wrong)
    out[:, order] = wrong
    return out


__all__ = ["wrong_per_length", "symbols_at"]
