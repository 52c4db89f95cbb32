"""Cost ledger: counts tokens and USD and enforces the budget *before* a call is sent.

A call reserves, when it takes its concurrency slot, a bound on its prompt tokens (its bytes until the
provider has reported usage, then the highest tokens per byte seen with a 25% margin) plus the
output tokens it will be allowed: its template's realistic bound, or less when that is all the budget
still affords (down to half the bound; below that the call is refused). The output cap is what the
provider is sent as the token limit, so a call can never cost more than its reservation, and even 256
concurrent calls cannot together cross the budget: a call that could is refused with
``BudgetExceeded`` and never reaches the network. Reservations are settled with the reported usage;
a call refused only because others are in flight may wait for them to settle (``BudgetExceeded.wait``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


class BudgetExceeded(RuntimeError):
    """The next call could exceed the run's money or token budget; it was not sent.

    ``wait`` is True when the call would fit once calls now in flight settle (they reserve their
    bound but usually spend far less): the caller may wait for that instead of giving up.
    """

    def __init__(self, message: str, *, wait: bool = False) -> None:
        super().__init__(message)
        self.wait = wait


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
    prompt_bytes: int = 0  # the prompt's byte bound, to learn the provider's tokens per byte at settlement


def prompt_token_bound(messages: list[dict[str, str]]) -> int:
    """An upper bound on prompt tokens: byte-level BPE never makes a token shorter than one byte."""
    return sum(len(m.get("content", "").encode("utf-8")) + 8 for m in messages) + 16


class Ledger:
    """Thread- and task-safe spend accounting with reservations."""

    def __init__(
        self,
        prices: Prices,
        max_usd: float | None = None,
        max_tokens: int | None = None,
        spent_usd: float = 0.0,
        spent_tokens: int = 0,
    ) -> None:
        self.prices = prices
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._tokens_per_byte = 1.0  # until a provider reports usage: a token is at least one byte
        self._observed = False
        self._lock = threading.Lock()

    def prompt_bound(self, prompt_bytes: int) -> int:
        """Prompt tokens to reserve for a prompt of ``prompt_bytes``: the byte count until the provider has
        reported usage, then the highest tokens-per-byte seen so far with a 25% margin (English runs near
        0.25 tokens per byte, so reserving bytes would hold four times what a call spends)."""
        return min(prompt_bytes, math.ceil(prompt_bytes * self._tokens_per_byte))

    def _learn(self, prompt_bytes: int, tokens_in: int) -> None:
        if prompt_bytes > 0 and tokens_in > 0:
            seen = min(1.0, 1.25 * tokens_in / prompt_bytes)
            self._tokens_per_byte = max(self._tokens_per_byte, seen) if self._observed else seen
            self._observed = True

    def reserve(
        self, prompt_bytes: int, wanted_output: int, *, min_output: int | None = None, price_factor: float = 1.0
    ) -> Reservation:
        """Reserve a prompt of ``prompt_bytes`` and up to ``wanted_output`` output tokens, or raise ``BudgetExceeded``.

        The output allowance shrinks to what the budget affords, but never below ``min_output``
        (default: all of ``wanted_output``): a reply cut much shorter than it needs is paid for and useless.
        """
        floor = wanted_output if min_output is None else min(min_output, wanted_output)
        with self._lock:
            tokens_in_bound = self.prompt_bound(prompt_bytes)
            allowed = min(wanted_output, self._affordable_output(tokens_in_bound, price_factor))
            if allowed < max(floor, 1):
                alone = min(wanted_output, self._affordable_output(tokens_in_bound, price_factor, in_flight=False))
                raise BudgetExceeded(
                    self._refusal(tokens_in_bound, floor, price_factor),
                    wait=alone >= max(floor, 1) and self._reserved_tokens > 0,
                )
            usd = self.prices.cost(tokens_in_bound, allowed) * price_factor
            reservation = Reservation(usd, tokens_in_bound + allowed, allowed, prompt_bytes)
            self._reserved_usd += reservation.usd
            self._reserved_tokens += reservation.tokens
        return reservation

    def _affordable_output(self, tokens_in_bound: int, price_factor: float, *, in_flight: bool = True) -> int:
        """Output tokens the remaining budget pays for after this prompt (caller holds the lock)."""
        affordable = math.inf
        reserved_usd, reserved_tokens = (self._reserved_usd, self._reserved_tokens) if in_flight else (0.0, 0)
        if self.max_usd is not None:
            prompt_usd = self.prices.cost(tokens_in_bound, 0) * price_factor
            left = self.max_usd - self.spent_usd - reserved_usd - prompt_usd
            per_token = self.prices.output_per_mtok * price_factor / 1_000_000
            affordable = left / per_token if per_token > 0 else (math.inf if left >= 0 else -1)
        if self.max_tokens is not None:
            affordable = min(affordable, self.max_tokens - self.spent_tokens - reserved_tokens - tokens_in_bound)
        return int(affordable) if math.isfinite(affordable) else 1 << 30

    def _refusal(self, tokens_in_bound: int, needed_output: int, price_factor: float) -> str:
        usd = self.prices.cost(tokens_in_bound, needed_output) * price_factor
        if self.max_usd is not None and self.spent_usd + self._reserved_usd + usd > self.max_usd:
            return (
                f"budget.max_usd={format_usd(self.max_usd)}: spent {format_usd(self.spent_usd)}, in flight "
                f"{format_usd(self._reserved_usd)}, the next call needs up to {format_usd(usd)}"
            )
        return (
            f"budget.max_teacher_tokens={self.max_tokens}: spent {self.spent_tokens}, in flight "
            f"{self._reserved_tokens}, the next call needs up to {tokens_in_bound + needed_output}"
        )

    def settle(self, reservation: Reservation, tokens_in: int, tokens_out: int, *, price_factor: float = 1.0) -> float:
        """Release a reservation and book the actual usage (zero for a failed call); returns its cost."""
        cost = self.prices.cost(tokens_in, tokens_out) * price_factor
        with self._lock:
            self._learn(reservation.prompt_bytes, tokens_in)
            self._reserved_usd -= reservation.usd
            self._reserved_tokens -= reservation.tokens
            if self._reserved_tokens == 0:
                self._reserved_usd = 0.0  # no float residue: nothing is in flight
            self.spent_usd += cost
            self.spent_tokens += tokens_in + tokens_out
        return cost
