"""A worker process does not carry the admin's modules (config/apps.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, django
django.setup()
import campaigns.tasks, messaging.dispatch  # what a worker runs
print(*sorted(m for m in ("openpyxl", "import_export.admin", "contacts.admin") if m in sys.modules))
from django.core.checks import run_checks
run_checks(tags=["admin"])  # the admin's check loads them, so it checks every ModelAdmin
from django.contrib import admin
print(len(admin.site._registry))
"""


def test_a_worker_loads_no_admin_module_and_the_checks_still_see_every_model_admin() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "True"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    loaded, registered = result.stdout.splitlines()
    assert loaded == ""
    assert int(registered) >= 20
