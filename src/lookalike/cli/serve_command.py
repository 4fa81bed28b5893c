"""`lookalike serve`: the web page and the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from lookalike.cli.console import IndexDir, err, fail


def serve(
    index_dir: IndexDir,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted upload, in MB.")] = 20.0,
    allow_writes: Annotated[
        bool, typer.Option(help="Allow adding and removing images through the API.")
    ] = False,
    default_k: Annotated[int, typer.Option(help="Results per search by default.")] = 12,
) -> None:
    """Serve the search page and the REST API (docs at /docs) for an index.

    The model and the vectors are loaded before the first request. Read-only unless
    --allow-writes; `lookalike index` may update the index meanwhile: searches see each commit.
    """
    import uvicorn

    from lookalike.store import check_is_index
    from lookalike.web.app import create_app
    from lookalike.web.settings import ServeSettings

    check_is_index(index_dir)
    if not 0 < port < 65536:
        fail(f"--port must be 1..65535, got {port}")
    settings = ServeSettings(
        index=index_dir.resolve(),
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        allow_writes=allow_writes,
        default_k=default_k,
    )
    err.print(
        f"lookalike: serving {index_dir} on http://{host}:{port}/ (API docs at /docs); "
        "Ctrl+C stops",
        markup=False,
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
