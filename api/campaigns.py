"""API routes: campaigns."""

from ninja import Router

router = Router(tags=["campaigns"])
