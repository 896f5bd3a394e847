"""Fixtures of the other test folders this one uses."""

from tests.e2e.conftest import page  # noqa: F401 - Chromium, for the XSS browser test
