"""Provider backends, one module each; ProviderAccount.backend names one of these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from messaging.backends.base import BaseBackend

BACKEND_CLASSES = {
    "simulator": "messaging.backends.simulator.SimulatorBackend",
    "console": "messaging.backends.console.ConsoleBackend",
    "locmem": "messaging.backends.locmem.LocmemBackend",
    "buzzbip": "messaging.backends.buzzbip.BuzzbipBackend",
    "bulksmsrates": "messaging.backends.bulksmsrates.BulkSMSRatesBackend",
    "bwatmesaj": "messaging.backends.bwatmesaj.BwatmesajBackend",
}


def backend_class(kind: str) -> type[BaseBackend]:
    try:
        return import_string(BACKEND_CLASSES[kind])
    except KeyError:
        raise ValueError(f"unknown backend {kind!r}; known: {', '.join(BACKEND_CLASSES)}") from None
