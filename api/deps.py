"""What every route depends on, in a module of its own so that routers never import the app.

    from api.deps import engine_of
    engine = engine_of(request)          # the engine ``create_app`` was given

``api.app`` imports the routers; were they to import the app back (as they
once did for this one function), the two would form an import cycle.
"""

from __future__ import annotations

from fastapi import Request

from engine import Engine


def engine_of(request: Request) -> Engine:
    """The engine this app serves."""
    engine: Engine = request.app.state.engine
    return engine
