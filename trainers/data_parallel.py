"""Data parallelism for the encoder student's own loop, through 🤗 Accelerate, only when launched with N > 1.

``accelerate launch`` (or ``torchrun``) starts N copies of the same program and sets ``WORLD_SIZE`` in
each; ``Accelerator`` then joins the process group (NCCL on GPUs, gloo on CPUs) and wraps the model in
DDP, which averages the gradients over the processes at every backward pass. The loop keeps its global
batches: every process walks the same seeded sequence of global batches and takes its own slice of each
(``shard``), so N processes see exactly the examples, in exactly the order, that one process sees.

In a plain, single process nothing here is constructed (``from_environment`` returns ``None``) and the
loop runs as it always did: no process group, no wrapper, no change to its numbers — and no Accelerate
state left behind in the process to clash with a later TRL Trainer that wants other settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


def launched_processes() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 when run plainly)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """Process 0 of a launch (or the only process): the one that writes files."""
    return os.environ.get("RANK", "0") == "0"


@dataclass
class DataParallel:
    accelerator: Any  # accelerate.Accelerator

    @classmethod
    def from_environment(cls) -> DataParallel | None:
        """The process group ``accelerate launch`` set up, or ``None`` in a single plain process."""
        if launched_processes() == 1:
            return None
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        # The encoder's own pooler (BERT's, unused by mean pooling) gets no gradient: DDP must not wait for it.
        return cls(Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]))

    @property
    def rank(self) -> int:
        return int(self.accelerator.process_index)

    @property
    def world(self) -> int:
        return int(self.accelerator.num_processes)

    @property
    def is_main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def device(self) -> Any:
        return self.accelerator.device

    def shard(self, batch: list[int]) -> tuple[list[int], bool]:
        """This process's slice of a global batch, and whether it really holds examples.

        A global batch smaller than the number of processes (an epoch's short last batch) leaves some
        processes empty; they still run a forward and backward pass — DDP needs every process at every
        gradient all-reduce — on the batch's first example, with weight 0 (``False``).
        """
        mine = batch[self.rank :: self.world]
        return (mine, True) if mine else (batch[:1], False)

    def prepare(self, model: Any, optimizer: Any) -> tuple[Any, Any]:
        prepared_model, prepared_optimizer = self.accelerator.prepare(model, optimizer)
        return prepared_model, prepared_optimizer

    def backward(self, loss: Any) -> None:
        self.accelerator.backward(loss)

    def mean(self, value: Any) -> float:
        """The mean of a scalar tensor over the processes (the global batch's loss, for the log)."""
        return float(self.accelerator.reduce(value.detach().to(self.device), reduction="sum")) / self.world

    def unwrap(self, model: Any) -> Any:
        return self.accelerator.unwrap_model(model)

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()

    def end(self) -> None:
        self.accelerator.end_training()  # leaves the process group cleanly
