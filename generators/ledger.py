"""Cost ledger: counts tokens and USD and enforces the budget *before* a call is sent.

A call reserves, when it takes its concurrency slot, an upper bound on its prompt tokens plus the
output tokens it will be allowed: its template's realistic bound, or less when that is all the budget
still affords (down to half the bound; below that the call is refused). The output cap is what the
provider is sent as the token limit, so a call can never cost more than its reservation, and even 256
concurrent calls cannot together cross the budget: a call that could is refused with
``BudgetExceeded`` and never reaches the network. Reservations are settled with the reported usage.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


class BudgetExceeded(RuntimeError):
    """The next call could exceed the run's money or token budget; it was not sent."""


def format_usd(amount: float) -> str:
    """Money with enough digits to be non-zero: $12.34, $0.0123, $0.000042."""
    if amount == 0:
        return "$0.00"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    digits = max(4, 2 - math.floor(math.log10(abs(amount))))
    return f"${amount:.{digits}f}"


@dataclass(frozen=True)
class Prices:
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1_000_000


@dataclass(frozen=True)
class Reservation:
    usd: float
    tokens: int
    max_output_tokens: int  # the token limit the call is sent with


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

    def reserve(self, tokens_in_bound: int, wanted_output: int, *, min_output: int | None = None) -> Reservation:
        """Reserve a prompt and up to ``wanted_output`` output tokens, or raise ``BudgetExceeded``.

        The output allowance shrinks to what the budget affords, but never below ``min_output``
        (default: all of ``wanted_output``): a reply cut much shorter than it needs is paid for and useless.
        """
        floor = wanted_output if min_output is None else min(min_output, wanted_output)
        with self._lock:
            allowed = min(wanted_output, self._affordable_output(tokens_in_bound))
            if allowed < max(floor, 1):
                raise BudgetExceeded(self._refusal(tokens_in_bound, floor))
            reservation = Reservation(self.prices.cost(tokens_in_bound, allowed), tokens_in_bound + allowed, allowed)
            self._reserved_usd += reservation.usd
            self._reserved_tokens += reservation.tokens
        return reservation

    def _affordable_output(self, tokens_in_bound: int) -> int:
        """Output tokens the remaining budget pays for after this prompt (caller holds the lock)."""
        affordable = math.inf
        if self.max_usd is not None:
            left = self.max_usd - self.spent_usd - self._reserved_usd - self.prices.cost(tokens_in_bound, 0)
            per_token = self.prices.output_per_mtok / 1_000_000
            affordable = left / per_token if per_token > 0 else (math.inf if left >= 0 else -1)
        if self.max_tokens is not None:
            affordable = min(affordable, self.max_tokens - self.spent_tokens - self._reserved_tokens - tokens_in_bound)
        return int(affordable) if math.isfinite(affordable) else 1 << 30

    def _refusal(self, tokens_in_bound: int, needed_output: int) -> str:
        usd = self.prices.cost(tokens_in_bound, needed_output)
        if self.max_usd is not None and self.spent_usd + self._reserved_usd + usd > self.max_usd:
            return (f"budget.max_usd={format_usd(self.max_usd)}: spent {format_usd(self.spent_usd)}, in flight "
                    f"{format_usd(self._reserved_usd)}, the next call needs up to {format_usd(usd)}")
        return (f"budget.max_teacher_tokens={self.max_tokens}: spent {self.spent_tokens}, in flight "
                f"{self._reserved_tokens}, the next call needs up to {tokens_in_bound + needed_output}")

    def settle(self, reservation: Reservation, tokens_in: int, tokens_out: int) -> float:
        """Release a reservation and book the actual usage (zero for a failed call); returns its cost."""
        cost = self.prices.cost(tokens_in, tokens_out)
        with self._lock:
            self._reserved_usd -= reservation.usd
            self._reserved_tokens -= reservation.tokens
            self.spent_usd += cost
            self.spent_tokens += tokens_in + tokens_out
        return cost
