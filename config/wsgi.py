"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Every page and the API as the process starts, not in its first request: the URLconf
# brings in the views, the admin and the API (ninja, its schemas); loaded lazily, about a
# second of the first request a web worker serves. Workers (qcluster) never come here.
get_resolver().url_patterns  # noqa: B018 - loads the URLconf
