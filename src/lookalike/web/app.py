"""The ASGI application: routes, the page, offline API docs, limits and error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lookalike.errors import (
    DiskFullError,
    EmbedderMismatchError,
    ImageError,
    IndexLockedError,
    InvalidInputError,
    LookalikeError,
    ReadOnlyIndexError,
    UnknownImageError,
)
from lookalike.version import __version__
from lookalike.web.api import ReadOnlyError, UploadTooLargeError, router
from lookalike.web.duplicates_api import duplicates_router
from lookalike.web.security import HostAndOriginGuard, allowed_host_names, docs_policy
from lookalike.web.service import SearchService, ServerBusyError
from lookalike.web.settings import ServeSettings

STATIC = Path(str(resources.files("lookalike.web") / "static"))

#: Library errors -> HTTP statuses, decided here and nowhere else.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnknownImageError, 404),
    (ImageError, 422),
    (InvalidInputError, 400),
    (EmbedderMismatchError, 409),
    (IndexLockedError, 409),
    (ReadOnlyIndexError, 403),
    (DiskFullError, 507),
    (ReadOnlyError, 403),
    (UploadTooLargeError, 413),
    (ServerBusyError, 503),
)


def _error(kind: str, detail: str, status: int) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status)


class UploadLimit:
    """Refuses request bodies over the limit before they are read (413), and bodies whose
    length is not declared (411), so a client cannot make the server buffer a huge upload.
    A body must arrive within ``timeout`` seconds (408 and the connection closed otherwise),
    so a client sending it a byte at a time cannot hold a connection and its buffer for ever:
    the body is read here, under that deadline, before the route sees it."""

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit + 64 * 1024  # room for the multipart envelope
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            response = _error("LengthRequired", "send the upload with a Content-Length", 411)
            await response(scope, receive, send)
            return
        if int(length) > self.limit:
            response = _error(
                "UploadTooLargeError",
                f"upload of {int(length):,} bytes is over the "
                f"limit of {self.limit - 64 * 1024:,} bytes",
                413,
            )
            await response(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.timeout):
                body = await _read_body(receive, int(length))
        except TimeoutError:
            response = _error(
                "RequestTimeout",
                f"the request body did not arrive within {self.timeout:g} s",
                408,
            )
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        if body is None:  # the client went away
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect, once the answer is sent
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read_body(receive: Receive, length: int) -> bytes | None:
    """The whole body of a request that declared ``length`` bytes (no more than that is kept;
    h11 refuses bodies longer than their Content-Length), or None on a disconnect."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)[:length]


def _swagger_assets() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def create_app(settings: ServeSettings, *, service: SearchService | None = None) -> FastAPI:
    """Build the app; the model and vectors are loaded before the first request."""
    shared = service or SearchService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        shared.warm()
        yield
        if service is None:
            shared.close()

    app = FastAPI(
        title="lookalike",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        description="Reverse image search: find the indexed images most similar to "
        "an image. Scores are higher-is-more-similar.",
    )
    app.state.service = shared
    app.include_router(router)
    app.include_router(duplicates_router)
    swagger = _swagger_assets()
    if swagger is not None:  # offline API docs from the swagger-ui-bundle package's files
        app.mount("/static/swagger", StaticFiles(directory=swagger), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(UploadLimit, limit=settings.max_upload_bytes, timeout=settings.body_timeout)
    # Outermost: refused hosts and origins go no further; every answer gets the headers.
    app.add_middleware(HostAndOriginGuard, allowed_hosts=allowed_host_names(settings.allowed_hosts))

    for kind, status in STATUS:

        def handler(request: Request, exc: Exception, status: int = status) -> JSONResponse:
            return _error(type(exc).__name__, str(exc), status)

        app.add_exception_handler(kind, handler)

    def other_library_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(type(exc).__name__, str(exc), 500)

    app.add_exception_handler(LookalikeError, other_library_error)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in errors
        ) or str(exc)
        return _error("InvalidRequest", detail, 422)

    app.add_exception_handler(RequestValidationError, invalid_request)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        """FastAPI's and Starlette's own refusals (unknown routes, bodies it cannot parse)
        in the same JSON shape as every other error."""
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else str(exc)
        response = _error(HTTPStatus(status).phrase.replace(" ", ""), str(detail), status)
        if isinstance(exc, StarletteHTTPException) and exc.headers:
            response.headers.update(exc.headers)
        return response

    app.add_exception_handler(StarletteHTTPException, http_error)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        html = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="lookalike API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )
        policy = docs_policy(bytes(html.body).decode())
        html.headers["content-security-policy"] = policy
        return html

    return app
