"""How many CPU threads PyTorch trains with.

Measured on a 2-core machine: while another process keeps a core busy, a small conv net trained
with 2 PyTorch threads ran ten times slower than with 1 (its threads wait on each other), so the
count is a parameter of every trainer; None keeps PyTorch's own choice (one per core).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` PyTorch threads, then restore the previous count."""
    from lookalike.embedders.model_folder import require

    require("torch", "training")
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
