"""Plain facts of the counting languages a^n b^(k n) c^(m n): symbols, phases, shapes.

Shared by the data generator (``datamodules.grammar``), the analysis of hidden states
(``analysis.recurrent``) and the figures (``callbacks.state_trajectories``).
"""

from __future__ import annotations

A, B, C = 0, 1, 2
SYMBOLS = "ABC"
# Phase of a position, by its input symbol; RESET is the first A of a block after a block
# (the step at which a network must restart its count).
PHASES = ("A", "B", "C", "reset")
PHASE_A, PHASE_B, PHASE_C, PHASE_RESET = range(4)
# language -> (k, m): B's per A and C's per A in a block
LANGUAGES = {"anbn": (1, 0), "anb2n": (2, 0), "anbncn": (1, 1), "anb2nc3n": (2, 3)}


END_NAME = "T"  # the end symbol (data.end_symbol): the last target of a string, never an input


def num_symbols(language: str, end_symbol: bool = False) -> int:
    """2 (A, B) or 3 (A, B, C), and one more with the end symbol T, whose index is then the last;
    ``KeyError`` for an unknown language."""
    return (3 if LANGUAGES[language][1] else 2) + bool(end_symbol)


def symbol_names(language: str, end_symbol: bool = False) -> str:
    """``"ABC"``, ``"AB"``, with the end symbol ``"ABCT"``, ``"ABT"``."""
    return SYMBOLS[: num_symbols(language)] + (END_NAME if end_symbol else "")
