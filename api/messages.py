"""API routes: messages."""

from ninja import Router

router = Router(tags=["messages"])
