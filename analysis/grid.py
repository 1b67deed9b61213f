"""The grid perceptron's analysis: where each unit switches, and every point's activations."""

from __future__ import annotations

from typing import Sequence


def dividing_line(w: tuple[float, float], b: float) -> dict:
    """Where a unit with input weights ``w = (w_x, w_y)`` and bias ``b`` switches: the line
    ``w_x x + w_y y + b = 0``, on which a sigmoid is 0.5 and a step jumps to 1.

    Returns ``{"equation": "y = -1.00 x + 0.50", "on": "above"}`` (the side where the unit is
    >= 0.5); vertical lines read ``x = c``, horizontal ones ``y = c``; with both weights 0 there
    is no line, ``equation`` is None and ``on`` is ``everywhere`` or ``nowhere``.
    """
    wx, wy, b = float(w[0]), float(w[1]), float(b)
    tiny = 1e-9 * max(abs(wx), abs(wy), abs(b), 1.0)

    def num(v: float) -> str:
        return f"{v + 0.0:.2f}"  # + 0.0 turns -0.0 into 0.0

    if abs(wy) > tiny:
        slope, intercept = -wx / wy, -b / wy
        if abs(wx) <= tiny:
            equation = f"y = {num(intercept)}"
        else:
            equation = f"y = {num(slope)} x {'-' if intercept < 0 else '+'} {num(abs(intercept))}"
        return {"equation": equation, "on": "above" if wy > 0 else "below"}
    if abs(wx) > tiny:
        return {"equation": f"x = {num(-b / wx)}", "on": "right" if wx > 0 else "left"}
    return {"equation": None, "on": "everywhere" if b >= 0 else "nowhere"}


def point_table(points, targets, hidden, output) -> list[dict]:
    """One row per point: ``x``, ``y``, ``target``, ``hidden`` (H activations), ``output``, ``pred``
    (output >= 0.5) and ``correct``, from points ``(N, 2)``, targets ``(N, 1)``, hidden ``(N, H)``
    and output ``(N, 1)`` (tensors or arrays); activations rounded to 4 decimals."""
    rows = []
    for p, target, h, o in zip(points, targets, hidden, output):
        t, out = int(float(target[0])), float(o[0])
        pred = int(out >= 0.5)
        rows.append({"x": float(p[0]), "y": float(p[1]), "target": t, "hidden": [round(float(v), 4) for v in h],
                     "output": round(out, 4), "pred": pred, "correct": pred == t})
    return rows


def dividing_lines(hidden_weight: Sequence, hidden_bias: Sequence) -> list[dict]:
    """``[{"unit": "h0", "equation": ..., "on": ...}]`` for every hidden unit (see ``dividing_line``)."""
    return [{"unit": f"h{i}", **dividing_line(w, b)} for i, (w, b) in enumerate(zip(hidden_weight, hidden_bias))]
