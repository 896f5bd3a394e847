"""API routes: contacts."""

from ninja import Router

router = Router(tags=["contacts"])
