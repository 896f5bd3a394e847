"""Dashboard pages: reports (placeholder until built)."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def reports(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Reports"})


urlpatterns = [
    path("reports/", reports, name="reports"),
]
