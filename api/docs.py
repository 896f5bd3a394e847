"""The browsable docs: django-ninja's Swagger UI, always from the local static files.

ninja serves its own copies only when "ninja" is an installed app, and a page that loads
Swagger UI from a CDN otherwise. Herald names ninja's template and static folders in
settings instead (so workers never import ninja), and this page always uses them: no
CDN, within the site's content security policy.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from ninja.openapi.docs import Swagger

if TYPE_CHECKING:
    from ninja import NinjaAPI


class LocalSwagger(Swagger):
    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {
            "swagger_settings": json.dumps(self.settings, indent=1),
            "api": api,
            # Bearer tokens, never the session's cookie: no CSRF token to send along.
            "add_csrf": False,
        }
        return render(request, self.template, context)
