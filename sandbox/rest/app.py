"""The simulated Vapi REST API: ``create_rest_app(sandbox)`` and the response-observer hook.

Served at Vapi's real paths (no ``/v1``): calls (+ the 302 recording routes), assistants, squads,
phone numbers, campaigns, observability scorecards, structured outputs, tools, chats
(``/chat``, ``/chat/responses``) and ``/analytics``; plus the sandbox's own unauthenticated
``/_links/...`` and ``/_storage/...`` (recordings) and ``GET /_sandbox/log`` (Bearer api key).

Module map: ``api_core`` (routing, auth, faults, logging, observers), ``api_resources`` (CRUD +
analytics), ``api_schemas`` (allow-lists), ``validation`` (NestJS-style checking), ``recordings``,
``chat``, ``analytics``, ``faults``.

``RESPONSE_OBSERVERS`` (see ``sandbox.rest.observe``) sees every JSON body and every SSE event served,
with its route template; tests register the SDK validator there (tests/sdk_validation.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.rest import recordings
from sandbox.rest import resources as api_resources
from sandbox.rest.chat import post_chat, post_chat_responses
from sandbox.rest.endpoints import Endpoint, RestApp
from sandbox.rest.observe import RESPONSE_OBSERVERS, ServedResponse, notify, take_observer_errors

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from sandbox.core import SandboxCore

__all__ = ["RESPONSE_OBSERVERS", "ServedResponse", "create_rest_app", "notify", "take_observer_errors"]


def all_endpoints() -> list[Endpoint]:
    """Every route the REST app serves."""
    return [
        *api_resources.endpoints(),
        *recordings.endpoints(),
        Endpoint("POST", "/chat", post_chat),
        Endpoint("POST", "/chat/responses", post_chat_responses),
    ]


def create_rest_app(sandbox: SandboxCore) -> ASGIApp:
    """The ASGI app of the simulated Vapi REST API for ``sandbox`` (in-process or under uvicorn)."""
    return RestApp(sandbox, all_endpoints())
