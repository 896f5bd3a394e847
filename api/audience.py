"""API routes: audience."""

from ninja import Router

router = Router(tags=["audience"])
