"""Independent computations the tests compare the project with: the reference's cell formulas
written out step by step (seq_models.py's SRN and LSTM), run through autograd, on sequences drawn
one at a time by the plain generator (``CountingLanguage.sequence``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.grammar import CountingLanguage, collate


def unpack(cell: str, flat: torch.Tensor, symbols: int, hidden: int, peepholes: bool = False) -> dict[str, torch.Tensor]:
    """One network's flat vector (the project's layout: [H0,] W_ih (G, S), W_hh (G, H), b (G,),
    [b_hn (H,),] V (S, H), c (S,)[, peepholes (3, H)], gates i, f, g, o or r, z, n) as the
    reference's matrices ``x W + h U + b``, ``h V + c`` (and ``P``: the input, forget and output
    gates' peephole weights; ``bhn``: the GRU candidate's bias inside the reset gate's product)."""
    G = {"srn": 1, "lstm": 4, "gru": 3}[cell] * hidden
    sizes = ([("H0", (hidden,))] if cell == "srn" else []) + [("W", (G, symbols)), ("U", (G, hidden)), ("b", (G,))]
    sizes += ([("bhn", (hidden,))] if cell == "gru" else []) + [("V", (symbols, hidden)), ("c", (symbols,))]
    sizes += [("P", (3, hidden))] if peepholes else []
    out, start = {}, 0
    for name, shape in sizes:
        n = int(np.prod(shape))
        out[name] = flat[start : start + n].view(shape)
        start += n
    for name in ("W", "U", "V"):
        out[name] = out[name].T  # x W: (S, G); h U: (H, G); h V: (H, S)
    return out


def reference_initial(cell: str, w: dict[str, torch.Tensor], batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The states before the first input, ``(h, c)`` (B, H): SRN h_0 = tanh(H0); LSTM h_0 = c_0 = 0."""
    H = w["U"].shape[0]
    h = torch.tanh(w["H0"]).expand(batch, H) if cell == "srn" else like.new_zeros(batch, H)
    return h, like.new_zeros(batch, H)


def reference_step(cell: str, w: dict[str, torch.Tensor], x_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> dict[str, torch.Tensor]:
    """One time step of the reference's formulas on one-hot inputs ``x_t`` (B, S) from the states
    ``h``, ``c`` (B, H): SRN h_t = tanh(x_t W + h_{t-1} U + b); LSTM [i f g o] = x_t W + h_{t-1} U
    + b, c_t = f c_{t-1} + i g, h_t = o tanh(c_t) (with peepholes, Gers & Schmidhuber's: i and f
    see c_{t-1}, o sees c_t); logits h_t V + c. Returns ``hidden``, ``logits`` and, for the LSTM,
    ``cell`` and the gates ``input``, ``forget``, ``output``. GRU (Cho et al. 2014, as torch's
    ``nn.GRU``): r = sig(x W_r + h U_r + b_r), z = sig(x W_z + h U_z + b_z),
    n = tanh(x W_n + b_n + r (h U_n + b_hn)), h_t = (1 - z) n + z h_{t-1}."""
    H = w["U"].shape[0]
    z = x_t @ w["W"] + h @ w["U"] + w["b"]
    out = {}
    if cell == "gru":
        r = torch.sigmoid(x_t @ w["W"][:, :H] + h @ w["U"][:, :H] + w["b"][:H])
        u = torch.sigmoid(x_t @ w["W"][:, H : 2 * H] + h @ w["U"][:, H : 2 * H] + w["b"][H : 2 * H])
        n = torch.tanh(x_t @ w["W"][:, 2 * H :] + w["b"][2 * H :] + r * (h @ w["U"][:, 2 * H :] + w["bhn"]))
        h = (1 - u) * n + u * h
        out.update(reset=r, update=u, candidate=n)
    elif cell == "lstm":
        peep = w.get("P")
        zi, zf, zg, zo = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
        i = torch.sigmoid(zi + (peep[0] * c if peep is not None else 0))
        f = torch.sigmoid(zf + (peep[1] * c if peep is not None else 0))
        c = f * c + i * torch.tanh(zg)
        o = torch.sigmoid(zo + (peep[2] * c if peep is not None else 0))
        h = o * torch.tanh(c)
        out.update(cell=c, input=i, forget=f, output=o)
    else:
        h = torch.tanh(z)
    return {"hidden": h, "logits": h @ w["V"] + w["c"], **out}


def reference_logits(cell: str, w: dict[str, torch.Tensor], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``reference_step`` over one-hot inputs ``x`` (B, T, S), a Python loop over steps from
    ``reference_initial``. Returns ``hidden``, ``logits`` and, for the LSTM, ``cell`` and its
    gates ``input``, ``forget``, ``output`` (B, T, H or S)."""
    B, T, _ = x.shape
    h, c = reference_initial(cell, w, B, x)
    steps = []
    for t in range(T):
        step = reference_step(cell, w, x[:, t], h, c)
        h, c = step["hidden"], step.get("cell", c)
        steps.append(step)
    return {k: torch.stack([s[k] for s in steps], 1) for k in steps[0]}


def grid_outputs(theta: torch.Tensor, hidden: int, x: torch.Tensor) -> torch.Tensor:
    """The grid nets' formulas for rows of stacked parameters ``theta`` (R, 4 H + 1) (W1 (H, 2),
    b1 (H,), W2 (1, H), b2 (1,) in that order) on points ``x`` (N, 2): sigmoid(sigmoid(x W1^T +
    b1) W2^T + b2), (R, N, 1); differentiable."""
    H, R = hidden, theta.shape[0]
    W1, b1, W2, b2 = theta[:, : 2 * H].view(R, H, 2), theta[:, 2 * H : 3 * H], theta[:, 3 * H : 4 * H].view(R, 1, H), theta[:, 4 * H :]
    return torch.sigmoid(torch.sigmoid(x @ W1.transpose(1, 2) + b1[:, None]) @ W2.transpose(1, 2) + b2[:, None])


def reference_training(cell: str, symbols: int, hidden: int, initial: list[torch.Tensor], make_optimizer, language: CountingLanguage,
                       blocks: int, batch: int, data_seed: int, updates: int, restart_at: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """One network trained as the reference would, with torch's own optimiser on one flat
    parameter and autograd through ``reference_logits``: ``updates`` updates, each on ``batch``
    fresh sequences drawn one by one from ``numpy.random.default_rng(data_seed)``; at each update
    in ``restart_at`` the weights are replaced and the optimiser starts afresh. Returns the final
    flat vector."""
    p = torch.nn.Parameter(initial[0].clone())
    opt = make_optimizer([p])
    rng = np.random.default_rng(data_seed)
    for u in range(1, updates + 1):
        seqs = [language.sequence(language.random_lengths(rng, blocks)) for _ in range(batch)]
        b = collate(seqs, symbols)
        logits = reference_logits(cell, unpack(cell, p, symbols, hidden), b["inputs"])["logits"]
        loss = F.cross_entropy(logits.flatten(0, 1), b["targets"].flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if restart_at and u in restart_at:
            with torch.no_grad():
                p.copy_(restart_at[u])
            opt = make_optimizer([p])
    return p.detach()


def reference_errors(cell: str, flat: torch.Tensor, symbols: int, hidden: int, sequences: list[dict]) -> dict[str, float]:
    """``error``, ``error_exact``, ``acc`` and ``loss`` of one network on ``sequences``,
    computed directly: the mean over every real position and symbol of the squared difference
    between softmax(logits) and the reference's (and the exact) target; the share of determined
    positions whose most likely symbol is the next one; the mean NLL."""
    b = collate(sequences, symbols)
    with torch.no_grad():
        logits = reference_logits(cell, unpack(cell, flat, symbols, hidden), b["inputs"])["logits"]
    valid, det = b["valid"], b["determined"]
    p = logits.softmax(-1)[valid]
    return {"error": float(((p - b["ref_probs"][valid]) ** 2).mean()), "error_exact": float(((p - b["probs"][valid]) ** 2).mean()),
            "acc": float((logits.argmax(-1)[det] == b["targets"][det]).float().mean()),
            "loss": float(F.cross_entropy(logits[valid], b["targets"][valid]))}


def legal_targets(sequence: dict, symbols: int) -> np.ndarray:
    """The legal next symbols (T, S) of one ``CountingLanguage.sequence``, read off its symbols:
    after an a, a or b (the language has no bound on n); after a b or c, the one that follows."""
    sym = sequence["symbols"]
    legal = np.zeros((len(sym) - 1, symbols), np.float32)
    for t in range(len(sym) - 1):
        if sym[t] == 0:
            legal[t, 0] = legal[t, 1] = 1.0
        else:
            legal[t, sym[t + 1]] = 1.0
    return legal
