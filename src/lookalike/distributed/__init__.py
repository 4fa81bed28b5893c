"""Scale-out on an existing engine: embedding on a Ray cluster.

Nothing here imports Ray until a function that needs it is called.
"""

from lookalike.distributed.ray_embedding import (
    RAY_INSTALL_HINT,
    EmbeddedRow,
    Shard,
    embed_with_ray,
    read_shard,
)

__all__ = ["RAY_INSTALL_HINT", "EmbeddedRow", "Shard", "embed_with_ray", "read_shard"]
