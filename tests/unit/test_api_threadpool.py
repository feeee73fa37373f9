"""No request of the API waits for a thread: every route and dependency is `async def`.

FastAPI runs a plain `def` route or dependency in a thread pool: a hand-over to a thread
and back for each, on every request, and under load the requests queue for its threads.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any, cast

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from temporalio.client import Client

from api.app import create_app
from offload.db import Pool
from offload.settings import Settings


def calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from calls(dependency)


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, those of included routers too."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "routes", None)
        if inner is not None:
            yield from api_routes(getattr(inner, "routes", inner))


def runs_on_the_event_loop(call: Any) -> bool:
    # A dependency may be an object whose __call__ is the coroutine (HTTPBearer).
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004
    )


def test_no_route_or_dependency_runs_in_the_thread_pool() -> None:
    app = create_app(Settings(_env_file=None), pool=cast(Pool, None), client=cast(Client, None))  # type: ignore[call-arg]
    routes = list(api_routes(app.routes))
    assert routes
    threaded = {
        f"{route.path}: {getattr(call, '__name__', type(call).__name__)}"
        for route in routes
        for call in [route.endpoint, *calls(route.dependant)]
        if not runs_on_the_event_loop(call)
    }
    assert threaded == set()
