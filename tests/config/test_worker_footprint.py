"""A worker process does not carry the admin's modules (config/apps.py), nor the API's
framework (ninja and pydantic: the docs' files are named in settings, not an app)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, django
django.setup()
import campaigns.tasks, messaging.dispatch, api.tasks  # what a worker runs
heavy = ("openpyxl", "import_export.admin", "contacts.admin", "ninja", "pydantic", "api.main")
print(*sorted(m for m in heavy if m in sys.modules))
from django.core.checks import run_checks
run_checks(tags=["admin"])  # the admin's check loads them, so it checks every ModelAdmin
from django.contrib import admin
print(len(admin.site._registry))
"""


def probed(code: str) -> str:
    """What `code` prints in a fresh process with production settings (DEBUG on, so no
    key is needed) and no database of the tests'."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "True"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_worker_loads_no_admin_module_and_the_checks_still_see_every_model_admin() -> None:
    loaded, registered = probed(PROBE).splitlines()
    assert loaded == ""
    assert int(registered) >= 20


WEB_PROBE = """
import sys
import config.wsgi  # what gunicorn loads
print(*sorted(m for m in ("api.main", "dashboard.urls", "contacts.admin") if m in sys.modules))
"""


def test_a_web_process_has_its_pages_and_the_api_before_its_first_request() -> None:
    assert probed(WEB_PROBE).split() == ["api.main", "contacts.admin", "dashboard.urls"]
