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
    max_upload_pixels: Annotated[
        int,
        typer.Option(
            help="Most pixels an uploaded image may have (refused from its header, 422). "
            "Local files indexed by `lookalike index` may have up to 150,000,000."
        ),
    ] = 40_000_000,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help="Also answer to this Host name (repeatable). By default only 127.0.0.1, "
            "localhost, [::1] and --host; other names get 400 (DNS rebinding)."
        ),
    ] = None,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a client has to send a request's headers.")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a client has to send an upload's body (else 408).")
    ] = 30.0,
    show_paths: Annotated[
        bool,
        typer.Option(help="Full file paths in answers (default: relative to the indexed folder)."),
    ] = False,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            help="Micro-batching: milliseconds a search waits for concurrent searches to share "
            "its network batch (a lone search never waits); 0 turns batching off."
        ),
    ] = 5.0,
    max_batch: Annotated[
        int, typer.Option(help="Micro-batching: most query images in one network batch.")
    ] = 16,
    batch_workers: Annotated[
        int,
        typer.Option(
            help="Micro-batching: batches in the network at once; a batch that starts while "
            "another runs uses a one-thread copy of the network (more requests/s on some "
            "machines, a longer tail)."
        ),
    ] = 1,
) -> None:
    """Serve the search page and the REST API (docs at /docs) for an index.

    The model and the vectors are loaded before the first request. Read-only unless
    --allow-writes; `lookalike index` may update the index meanwhile: searches see each commit.
    Uploads are decoded a few at a time (one per core); concurrent searches share network
    batches (see --batch-wait-ms); slow clients are cut off (see --header-timeout,
    --body-timeout).
    """
    import uvicorn

    from lookalike.store import check_is_index
    from lookalike.web.app import create_app
    from lookalike.web.server import uvicorn_options
    from lookalike.web.settings import ServeSettings

    check_is_index(index_dir)
    if not 0 < port < 65536:
        fail(f"--port must be 1..65535, got {port}")
    if max_upload_pixels < 1:
        fail(f"--max-upload-pixels must be at least 1, got {max_upload_pixels}")
    if header_timeout <= 0 or body_timeout <= 0:
        fail("--header-timeout and --body-timeout must be positive")
    if not 0 <= batch_wait_ms <= 1000:
        fail(f"--batch-wait-ms must be 0 (off) to 1000, got {batch_wait_ms:g}")
    if max_batch < 1:
        fail(f"--max-batch must be at least 1, got {max_batch}")
    if batch_workers < 1:
        fail(f"--batch-workers must be at least 1, got {batch_workers}")
    settings = ServeSettings(
        index=index_dir.resolve(),
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        allow_writes=allow_writes,
        default_k=default_k,
        max_upload_pixels=max_upload_pixels,
        allowed_hosts=(host, *(allow_host or [])),
        show_paths=show_paths,
        header_timeout=header_timeout,
        body_timeout=body_timeout,
        batch_wait=batch_wait_ms / 1000,
        max_batch=max_batch,
        batch_workers=batch_workers,
    )
    err.print(
        f"lookalike: serving {index_dir} on http://{host}:{port}/ (API docs at /docs); "
        "Ctrl+C stops",
        markup=False,
    )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="warning",
        **uvicorn_options(settings.header_timeout),  # type: ignore[arg-type]
    )
