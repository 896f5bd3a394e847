"""Provider backends, one module each, and the one list of them: `Backend`.

ProviderAccount.backend stores a Backend value; its choices, the CLI's `--backend`
and `backend_class()` all read this list, so a backend is added here and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from messaging.backends.base import BaseBackend


class Backend(models.TextChoices):
    """Each gateway: the kind an account stores, the class that speaks to it, its label."""

    SIMULATOR = (
        "simulator",
        "messaging.backends.simulator.SimulatorBackend",
        "Simulator (built in, sends nothing)",
    )
    CONSOLE = "console", "messaging.backends.console.ConsoleBackend", "Console (prints messages)"
    LOCMEM = "locmem", "messaging.backends.locmem.LocmemBackend", "In-memory (tests)"
    BUZZBIP = "buzzbip", "messaging.backends.buzzbip.BuzzbipBackend", "Buzzbip (SMS, WhatsApp)"
    BULKSMSRATES = (
        "bulksmsrates",
        "messaging.backends.bulksmsrates.BulkSMSRatesBackend",
        "BulkSMSRates (SMS, WhatsApp)",
    )
    BWATMESAJ = "bwatmesaj", "messaging.backends.bwatmesaj.BwatmesajBackend", "Bwatmesaj (SMS)"

    class_path: str

    def __new__(cls, kind: str, class_path: str) -> Backend:
        # The stored value is the kind alone; the class path rides along on the member.
        member = str.__new__(cls, kind)
        member._value_ = kind
        member.class_path = class_path
        return member


def backend_class(kind: str) -> type[BaseBackend]:
    for backend in Backend:
        if backend == kind:
            return import_string(backend.class_path)
    raise ValueError(f"unknown backend {kind!r}; known: {', '.join(Backend.values)}")
