"""The REST API under /api/v1/: one NinjaAPI, its routers, its schema and docs.

Every route authenticates a Bearer token (api.auth) and is paced per token; the schema
(/api/v1/openapi.json) and the browsable docs (/api/v1/docs) are public.
"""

from __future__ import annotations

from datetime import datetime

from csp.decorators import csp_update
from django.http import HttpRequest
from ninja import NinjaAPI, Schema

from api import audience, campaigns, contacts, errors, messages
from api.auth import TokenAuth, TokenThrottle, token_of
from api.docs import LocalSwagger

DESCRIPTION = """\
Herald's API for integrations: contacts, opt-outs, segments, campaigns, messages and
transactional sends.

Authenticate with a personal API token (Dashboard → API tokens, or
`python manage.py api token create`): `Authorization: Bearer hrld_…`. A token acts as its
user, within its scopes. Every error has one shape:
`{"error": {"code": "...", "message": "...", "details": {...}}}`; a token over its pace is
answered 429 with `Retry-After`. Lists are newest first; follow `next_cursor`.
"""

api = NinjaAPI(
    title="Herald API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api-v1",
    auth=TokenAuth(),
    throttle=TokenThrottle(),
    openapi_url="/openapi.json",
    docs_url="/docs",
    docs=LocalSwagger(),
    # Swagger UI draws its icons as data: SVGs; the rest of the policy stays as it is.
    docs_decorator=csp_update({"img-src": ["'self'", "data:"]}),
)
errors.install(api)


@api.get("/", auth=None, throttle=[], tags=["token"], summary="Where the schema and docs are")
def index(request: HttpRequest) -> dict[str, str]:
    return {
        "openapi": request.build_absolute_uri("openapi.json"),
        "docs": request.build_absolute_uri("docs"),
    }


class TokenOut(Schema):
    name: str
    user: str
    scopes: list[str]
    expires_at: datetime | None
    created_at: datetime


@api.get("/token", response=TokenOut, tags=["token"], summary="The token in use")
def this_token(request: HttpRequest) -> dict[str, object]:
    """Who the token acts as and what it may do: a cheap way to check a token works."""
    token = token_of(request)
    return {
        "name": token.name,
        "user": token.user.get_username(),
        "scopes": token.scopes,
        "expires_at": token.expires_at,
        "created_at": token.created_at,
    }


api.add_router("/contacts", contacts.router)
api.add_router("/", audience.router)
api.add_router("/campaigns", campaigns.router)
api.add_router("/", messages.router)
