"""Test settings: the real settings, minus the HTTPS redirect the test client cannot follow."""

import os
import tempfile
from pathlib import Path

# The tests run with DEBUG off, where Herald refuses to start without a real key: they bring
# one (in the environment, so the processes they start inherit it).
os.environ.setdefault(
    "SECRET_KEY", "tests-only-7Hq2Lm9Xv4Rz8Kp1Wn6Bc3Yd5Jf0Gs-Ae_Ui9Op2Lk7Jh4Gf6Ds8Aq"
)

from config.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
# No collectstatic before tests: serve from the apps' folders, unhashed.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory, so the tests' helper processes (two workers sharing one
    # account's rate limit) open the same test database.
    # One per test run, so runs side by side never share (and corrupt) it.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.gettempdir()) / f"herald-test-{os.getpid()}.sqlite3")
    }

# Tests change messages and read the counts back at once.
HERALD_LIVE_COUNTS_SECONDS = 0
# Tasks run inline: a campaign run does not sleep for retries (tests move time instead).
HERALD_RETRY_WAIT_SECONDS = 0
HERALD_REQUEST_RETRY_SECONDS = 0.01  # backoff still honours a provider's Retry-After
# Webhooks are applied in the request, so a test reads their effect at once; the queued
# door has its own tests (tests/messaging/test_webhook_queue.py).
HERALD_WEBHOOK_APPLY = "inline"
HERALD_WEBHOOK_LINGER_SECONDS = 0

# Side-by-side runs against one PostgreSQL server each need their own test database.
if os.environ.get("HERALD_TEST_DB_NAME"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ["HERALD_TEST_DB_NAME"]  # noqa: F405
