"""Cost ledger: counts tokens and USD and enforces the budget *before* a call is sent.

Each call reserves its worst case (an upper bound on prompt tokens plus ``max_tokens`` of output)
under a lock; the reservation is settled with the provider's reported usage afterwards. So even 32
concurrent calls cannot together cross the budget: a call that could is refused with
``BudgetExceeded`` and never reaches the network.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


class BudgetExceeded(RuntimeError):
    """The next call could exceed the run's money or token budget; it was not sent."""


@dataclass(frozen=True)
class Prices:
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1_000_000


def prompt_token_bound(messages: list[dict[str, str]]) -> int:
    """An upper bound on prompt tokens: byte-level BPE never makes a token shorter than one byte."""
    return sum(len(m.get("content", "").encode("utf-8")) + 8 for m in messages) + 16


class Ledger:
    """Thread- and task-safe spend accounting with reservations."""

    def __init__(self, prices: Prices, max_usd: float | None = None, max_tokens: int | None = None,
                 spent_usd: float = 0.0, spent_tokens: int = 0) -> None:
        self.prices = prices
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._lock = threading.Lock()

    def reserve(self, tokens_in_bound: int, max_tokens_out: int) -> tuple[float, int]:
        """Reserve a call's worst case or raise ``BudgetExceeded``; returns the reservation."""
        usd = self.prices.cost(tokens_in_bound, max_tokens_out)
        tokens = tokens_in_bound + max_tokens_out
        with self._lock:
            if self.max_usd is not None and self.spent_usd + self._reserved_usd + usd > self.max_usd:
                raise BudgetExceeded(
                    f"budget.max_usd={self.max_usd}: spent ${self.spent_usd:.4f}, in flight "
                    f"${self._reserved_usd:.4f}, next call could cost ${usd:.4f}"
                )
            if self.max_tokens is not None and self.spent_tokens + self._reserved_tokens + tokens > self.max_tokens:
                raise BudgetExceeded(
                    f"budget.max_teacher_tokens={self.max_tokens}: spent {self.spent_tokens}, in flight "
                    f"{self._reserved_tokens}, next call could use {tokens}"
                )
            self._reserved_usd += usd
            self._reserved_tokens += tokens
        return usd, tokens

    def settle(self, reservation: tuple[float, int], tokens_in: int, tokens_out: int) -> float:
        """Release a reservation and book the actual usage (zero for a failed call); returns its cost."""
        cost = self.prices.cost(tokens_in, tokens_out)
        with self._lock:
            self._reserved_usd -= reservation[0]
            self._reserved_tokens -= reservation[1]
            self.spent_usd += cost
            self.spent_tokens += tokens_in + tokens_out
        return cost
