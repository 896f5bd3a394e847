"""The admin, loaded with the URLconf rather than when the process starts.

A worker (`manage.py qcluster`) serves no page, yet `django.contrib.admin` imports every
app's admin module at start, and with them django-import-export, tablib and openpyxl:
about 15 MB in each worker process for nothing. Here the admin's modules load with
config/urls.py, as Django's SimpleAdminConfig intends, so a process that serves or
reverses a URL has them and a worker does not.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.apps import SimpleAdminConfig
from django.core import checks


class AdminConfig(SimpleAdminConfig):
    def ready(self) -> None:
        super().ready()
        # The admin's own check reads the registry, which is filled only once the admin
        # modules are loaded: load them first, whenever the checks run (`manage.py
        # check`, migrate, runserver), so no ModelAdmin goes unchecked.
        from django.contrib.admin.checks import check_admin_app

        checks.registry.registry.registered_checks.discard(check_admin_app)
        checks.register(_check_admin_discovered, checks.Tags.admin)


def _check_admin_discovered(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.contrib import admin
    from django.contrib.admin.checks import check_admin_app

    admin.autodiscover()
    return check_admin_app(app_configs, **kwargs)
