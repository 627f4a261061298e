"""Signals, retention policies and deleting events, over HTTP in Seq's shapes.

| Method and path | Permission | Answer |
|---|---|---|
| `GET /api/signals[/{id}]`, `GET /api/signals/template` | Read | `SignalEntity` (list) |
| `POST /api/signals`, `PUT /api/signals/{id}` | Write | 201 / 200 and the signal |
| `DELETE /api/signals/{id}` | Write | 204 (409 while a retention policy uses it) |
| `GET /api/retentionpolicies[/{id}]`, `…/template` | Project | `RetentionPolicyEntity` (list) |
| `POST /api/retentionpolicies`, `PUT /api/retentionpolicies/{id}` | Project | 201 / 200 |
| `DELETE /api/retentionpolicies/{id}` | Project | 204 |
| `POST /api/retentionpolicies/apply` (seqfast's own) | Project | the pass's report |
| `DELETE /api/events/signal` (`filter`, `signal`, `fromDateUtc`, `toDateUtc`) | Project | count |

The deletion answers `{"DeletedEventCount": n}`.  Bad input is 400 `{"Error": …}`, an
unknown id 404.  Work that touches the disk (deleting events, applying retention) runs in a
worker thread, so the server stays responsive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from seqfast.errors import SeqfastError
from seqfast.meta.apikeys import ApiKeys
from seqfast.meta.retention_policies import (
    InvalidRetentionPolicy,
    RetentionPolicies,
    parse_timespan,
)
from seqfast.meta.signals import InvalidSignal, Signals, UnknownSignal, filters_from_json
from seqfast.storage.retention import RetentionReport
from seqfast.storage.store import Store

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"Error": message}, status_code=status)


def apply_retention(store: Store, signals: Signals, policies: RetentionPolicies) -> RetentionReport:
    """One retention pass with the policies in the metadata database (blocking)."""
    return store.apply_retention(policies.rules(signals))


def tell_saved_filters(store: Store, signals: Signals) -> None:
    """Gives the store every signal's filters, for the bitmaps it builds (blocking)."""
    store.set_saved_filters(
        {s.id: [f.filter for f in s.filters if f.filter.strip()] for s in signals.list()}
    )


def signal_routes(
    *,
    store: Store,
    signals: Signals,
    policies: RetentionPolicies,
    keys: ApiKeys,
    require_api_key: bool,
) -> list[Route]:
    """The routes of this module, authorised with `keys` as `seqfast.api.app` does."""

    def guarded(permission: str, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            token = request.headers.get("x-seq-apikey") or request.query_params.get("apiKey")
            key = keys.authenticate(token if token not in (None, "", "null") else None)
            if key is None and require_api_key:
                return _error(401, "an API key is required: send it in X-Seq-ApiKey")
            if key is not None and not key.allows(permission):
                return _error(403, f"the API key does not have the {permission.title()} permission")
            try:
                return await handler(request)
            except UnknownSignal as exc:
                return _error(404, str(exc))
            except (InvalidSignal, InvalidRetentionPolicy) as exc:
                return _error(400, str(exc))
            except SeqfastError as exc:  # the metadata database or the store failed
                return _error(503, str(exc))

        return run

    async def body_object(request: Request) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise InvalidSignal(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidSignal("the body must be a JSON object")
        return body

    def title_of(body: dict[str, Any]) -> str:
        title = body.get("Title")
        if not isinstance(title, str) or not title.strip():
            raise InvalidSignal("a signal needs a Title")
        return title

    async def saved_filters_changed() -> None:
        # The change is made: a failure to read the signals back must not turn it into an
        # error answer (the server gives the store the saved filters again every minute).
        with contextlib.suppress(SeqfastError):
            await run_in_threadpool(tell_saved_filters, store, signals)

    # -- signals -------------------------------------------------------------------------------

    async def list_signals(request: Request) -> Response:
        return JSONResponse([s.to_json() for s in signals.list()])

    async def signal_template(request: Request) -> Response:
        return JSONResponse(
            {"Id": None, "Title": "New Signal", "Description": "", "Filters": [], "Columns": []}
        )

    async def get_signal(request: Request) -> Response:
        found = signals.get(request.path_params["id"])
        if found is None:
            return _error(404, f"there is no signal {request.path_params['id']!r}")
        return JSONResponse(found.to_json())

    async def create_signal(request: Request) -> Response:
        body = await body_object(request)
        created = signals.create(
            title_of(body),
            filters_from_json(body.get("Filters")),
            body.get("Description"),
        )
        await saved_filters_changed()
        return JSONResponse(created.to_json(), status_code=201)

    async def update_signal(request: Request) -> Response:
        body = await body_object(request)
        updated = signals.update(
            request.path_params["id"],
            title_of(body),
            filters_from_json(body.get("Filters")),
            body.get("Description"),
        )
        await saved_filters_changed()
        return JSONResponse(updated.to_json())

    async def remove_signal(request: Request) -> Response:
        try:
            removed = signals.remove(request.path_params["id"])
        except UnknownSignal:
            raise
        except InvalidSignal as exc:
            return _error(409, str(exc))
        if not removed:
            return _error(404, f"there is no signal {request.path_params['id']!r}")
        await saved_filters_changed()
        return Response(status_code=204)

    # -- retention policies --------------------------------------------------------------------

    def policy_fields(body: dict[str, Any]) -> tuple[timedelta | None, str | None, int | None]:
        raw_time = body.get("RetentionTime")
        retention = None if raw_time is None else parse_timespan(raw_time)
        expression = body.get("RemovedSignalExpression")
        signal_id: str | None = None
        if expression is not None:
            if not isinstance(expression, dict) or not isinstance(expression.get("SignalId"), str):
                raise InvalidRetentionPolicy(
                    'RemovedSignalExpression must be {"SignalId": "signal-N"} or null'
                )
            if expression.get("Kind", "Signal") != "Signal":
                raise InvalidRetentionPolicy(
                    "RemovedSignalExpression must name one signal (Kind Signal)"
                )
            signal_id = expression["SignalId"]
        size = body.get("MaxTotalBytes")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise InvalidRetentionPolicy("MaxTotalBytes must be an integer number of bytes")
        return retention, signal_id, size

    async def list_policies(request: Request) -> Response:
        return JSONResponse([p.to_json() for p in policies.list()])

    async def policy_template(request: Request) -> Response:
        return JSONResponse(
            {
                "Id": None,
                "RetentionTime": "30.00:00:00",
                "RemovedSignalExpression": None,
                "MaxTotalBytes": None,
            }
        )

    async def get_policy(request: Request) -> Response:
        found = policies.get(request.path_params["id"])
        if found is None:
            return _error(404, f"there is no retention policy {request.path_params['id']!r}")
        return JSONResponse(found.to_json())

    async def create_policy(request: Request) -> Response:
        created = policies.create(*policy_fields(await body_object(request)))
        return JSONResponse(created.to_json(), status_code=201)

    async def update_policy(request: Request) -> Response:
        fields = policy_fields(await body_object(request))
        updated = policies.update(request.path_params["id"], *fields)
        if updated is None:
            return _error(404, f"there is no retention policy {request.path_params['id']!r}")
        return JSONResponse(updated.to_json())

    async def remove_policy(request: Request) -> Response:
        if not policies.remove(request.path_params["id"]):
            return _error(404, f"there is no retention policy {request.path_params['id']!r}")
        return Response(status_code=204)

    async def apply_now(request: Request) -> Response:
        try:
            report = await run_in_threadpool(apply_retention, store, signals, policies)
        except ValueError as exc:  # a policy's signal holds a filter that cannot be evaluated
            return _error(400, f"cannot apply the retention policies: {exc}")
        return JSONResponse(report.to_json())

    # -- deleting events -----------------------------------------------------------------------

    async def delete_events(request: Request) -> Response:
        params = request.query_params
        extra: list[str] = []
        if params.get("signal"):
            try:
                extra = signals.resolve(params["signal"])
            except InvalidSignal as exc:  # a parameter, not the resource: 400 even if unknown
                return _error(400, f"signal: {exc}")
        text = params.get("filter")
        start, end = params.get("fromDateUtc") or None, params.get("toDateUtc") or None
        try:
            deleted = await run_in_threadpool(
                lambda: store.delete_events(text, start, end, extra_filters=extra)
            )
        except ValueError as exc:  # a filter or date that does not parse or cannot be evaluated
            return _error(400, f"cannot delete: {exc}")
        return JSONResponse({"DeletedEventCount": deleted})

    read, write, project = "read", "write", "project"
    return [
        Route("/api/signals", guarded(read, list_signals), methods=["GET"]),
        Route("/api/signals/", guarded(read, list_signals), methods=["GET"]),
        Route("/api/signals/template", guarded(read, signal_template), methods=["GET"]),
        Route("/api/signals", guarded(write, create_signal), methods=["POST"]),
        Route("/api/signals/", guarded(write, create_signal), methods=["POST"]),
        Route("/api/signals/{id}", guarded(read, get_signal), methods=["GET"]),
        Route("/api/signals/{id}", guarded(write, update_signal), methods=["PUT"]),
        Route("/api/signals/{id}", guarded(write, remove_signal), methods=["DELETE"]),
        Route("/api/retentionpolicies", guarded(project, list_policies), methods=["GET"]),
        Route("/api/retentionpolicies/", guarded(project, list_policies), methods=["GET"]),
        Route(
            "/api/retentionpolicies/template", guarded(project, policy_template), methods=["GET"]
        ),
        Route("/api/retentionpolicies", guarded(project, create_policy), methods=["POST"]),
        Route("/api/retentionpolicies/", guarded(project, create_policy), methods=["POST"]),
        Route("/api/retentionpolicies/apply", guarded(project, apply_now), methods=["POST"]),
        Route("/api/retentionpolicies/{id}", guarded(project, get_policy), methods=["GET"]),
        Route("/api/retentionpolicies/{id}", guarded(project, update_policy), methods=["PUT"]),
        Route("/api/retentionpolicies/{id}", guarded(project, remove_policy), methods=["DELETE"]),
        Route("/api/events/signal", guarded(project, delete_events), methods=["DELETE"]),
    ]
