"""Everything but ingestion, on Starlette: health, the API root, API keys.

These endpoints are small and infrequent; Starlette's routing and responses keep them short.
They are served through `seqfast.api.http.asgi_bridge` on the same port as ingestion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import seqfast
from seqfast.api.ingest import Ingestion, api_key_of
from seqfast.api.query_routes import SignalResolver, no_signals, query_routes
from seqfast.events import levels
from seqfast.meta.apikeys import ApiKeys


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"Error": message}, status_code=status)


def build_app(
    ingestion: Ingestion,
    keys: ApiKeys,
    require_api_key: bool,
    healthy: Callable[[], tuple[bool, str]],
    extra_routes: Sequence[BaseRoute] = (),
    *,
    resolve_signals: SignalResolver = no_signals,
    query_timeout_seconds: float | None = None,
    tail_buffer_events: int = 100_000,
) -> Starlette:
    def authorise(request: Request, permission: str) -> JSONResponse | None:
        """None when the caller may act; otherwise the error response.

        Without `require_api_key` (the default, as in Seq without authentication) the API is
        open; with it, the caller needs a key holding `permission`.
        """
        token = request.headers.get("x-seq-apikey") or request.query_params.get("apiKey")
        key = keys.authenticate(token if token not in (None, "", "null") else None)
        if key is None:
            if require_api_key:
                return _error(401, "an API key is required: send it in X-Seq-ApiKey")
            return None
        if not key.allows(permission):
            return _error(403, f"the API key does not have the {permission.title()} permission")
        return None

    async def health(request: Request) -> Response:
        ok, status = healthy()
        return JSONResponse({"status": status}, status_code=200 if ok else 503)

    async def root(request: Request) -> Response:
        return JSONResponse(
            {
                "Product": "seqfast",
                "Version": seqfast.__version__,
                "Links": {
                    "Events": "api/events/raw",
                    "Clef": "ingest/clef",
                    "OtlpLogs": "ingest/otlp/v1/logs",
                    "OtlpTraces": "ingest/otlp/v1/traces",
                    "ApiKeys": "api/apikeys",
                    "Health": "health",
                    "EventsQuery": "api/events",
                    "EventsStream": "api/events/stream",
                    "Data": "api/data",
                },
            }
        )

    async def list_keys(request: Request) -> Response:
        if (denied := authorise(request, "system")) is not None:
            return denied
        return JSONResponse([k.to_json(keys.metrics(k.id)) for k in keys.list()])

    async def create_key(request: Request) -> Response:
        if (denied := authorise(request, "system")) is not None:
            return denied
        try:
            body = orjson.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            title = body.get("Title")
            if not isinstance(title, str) or not title:
                raise ValueError("Title is required")
            permissions = body.get("AssignedPermissions") or ["Ingest"]
            settings = body.get("InputSettings") or {}
            minimum = settings.get("MinimumLevel")
            if minimum is not None and levels.canonical(minimum) is None:
                raise ValueError(f"MinimumLevel {minimum!r} is not a known level")
            applied = {p["Name"]: p["Value"] for p in settings.get("AppliedProperties") or []}
            key, token = keys.create(
                title,
                permissions=permissions,
                minimum_level=minimum,
                properties=applied,
            )
        except (ValueError, KeyError, TypeError) as exc:  # InvalidApiKey is a ValueError
            return _error(400, f"cannot create the API key: {exc}")
        return JSONResponse({**key.to_json(keys.metrics(key.id)), "Token": token}, status_code=201)

    async def get_key(request: Request) -> Response:
        if (denied := authorise(request, "system")) is not None:
            return denied
        key = keys.get(request.path_params["id"])
        if key is None:
            return _error(404, f"there is no API key {request.path_params['id']!r}")
        return JSONResponse(key.to_json(keys.metrics(key.id)))

    async def remove_key(request: Request) -> Response:
        if (denied := authorise(request, "system")) is not None:
            return denied
        if not keys.remove(request.path_params["id"]):
            return _error(404, f"there is no API key {request.path_params['id']!r}")
        return Response(status_code=204)

    async def not_found(request: Request, exc: Any) -> Response:
        return _error(404, f"there is no endpoint {request.method} {request.url.path}")

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET", "HEAD"]),
            Route("/api", root, methods=["GET"]),
            Route("/api/", root, methods=["GET"]),
            Route("/api/apikeys", list_keys, methods=["GET"]),
            Route("/api/apikeys/", list_keys, methods=["GET"]),
            Route("/api/apikeys", create_key, methods=["POST"]),
            Route("/api/apikeys/{id}", get_key, methods=["GET"]),
            Route("/api/apikeys/{id}", remove_key, methods=["DELETE"]),
            *query_routes(
                ingestion.store,
                authorise,
                resolve_signals=resolve_signals,
                timeout_seconds=query_timeout_seconds,
                tail_buffer_events=tail_buffer_events,
            ),
            *extra_routes,
        ],
        exception_handlers={404: not_found},
    )


__all__ = ["api_key_of", "build_app"]
