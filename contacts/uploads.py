"""Import uploads past HERALD_IMPORT_MAX_UPLOAD_BYTES: refused by the form, never stored.

Django's own limits either answer 413 with nothing said (DATA_UPLOAD_MAX_MEMORY_SIZE, for
fields) or have none for files. `CappedUploadHandler` goes first among the upload
handlers and stops handing chunks on past the limit, so the temporary file never grows
beyond it; the field gets an `OversizedUpload` that knows how big the file was, and the
form says so. Handlers must be set before anything reads the request's body, which the
CSRF check does: `capped_uploads` wraps a view the way Django's documentation shows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from contacts.workbooks import megabytes


class OversizedUpload(UploadedFile):
    """What a field receives for a file past the limit: its name and size, no content."""

    def __init__(self, name: str, size: int, content_type: str) -> None:
        super().__init__(file=None, name=name, content_type=content_type, size=size)


class CappedUploadHandler(FileUploadHandler):
    def __init__(self, request: HttpRequest | None = None, limit: int | None = None) -> None:
        super().__init__(request)
        self.limit = settings.HERALD_IMPORT_MAX_UPLOAD_BYTES if limit is None else limit
        self.received = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        # None: the handlers after this one (memory, temporary file) never see the chunk.
        return raw_data if self.received <= self.limit else None

    def file_complete(self, file_size: int) -> OversizedUpload | None:
        if self.received <= self.limit:
            return None  # the next handler has the whole file
        return OversizedUpload(str(self.file_name), self.received, str(self.content_type))


def capped_uploads(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`view` with its uploads capped; CSRF is still checked, after the handler is in."""

    @csrf_exempt
    @functools.wraps(view)
    def capped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.upload_handlers.insert(0, CappedUploadHandler(request))
        return csrf_protect(view)(request, *args, **kwargs)

    return capped


def refuse_oversized(upload: Any) -> None:
    """The form's error for a file past the limit (a ValidationError), else nothing."""
    if isinstance(upload, OversizedUpload):
        limit = settings.HERALD_IMPORT_MAX_UPLOAD_BYTES
        raise forms.ValidationError(
            f"The file is more than {megabytes(limit)}, the most an upload may be "
            f"(HERALD_IMPORT_MAX_UPLOAD_BYTES; this one was {megabytes(upload.size or 0)}). "
            "Split it, or have it imported from the shell (python manage.py import_contacts "
            "or import_opt_outs)."
        )
