"""Dashboard pages: builder (placeholder until built)."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def campaign_new(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "New campaign"})


@login_required
def campaign_edit(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Edit campaign"})


@login_required
def campaign_preview(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Preview"})


@login_required
def campaign_test(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Test send"})


urlpatterns = [
    path("campaigns/new/", campaign_new, name="campaign_new"),
    path("campaigns/<int:pk>/edit/", campaign_edit, name="campaign_edit"),
    path("campaigns/preview/", campaign_preview, name="campaign_preview"),
    path("campaigns/<int:pk>/test/", campaign_test, name="campaign_test"),
]
