from typing import Any

#: Messages "sent" through the locmem backend, for tests (like django.core.mail.outbox).
outbox: list[Any] = []
