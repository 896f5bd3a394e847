"""Dashboard pages: campaign pages (placeholder until built)."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def campaign(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Campaign"})


@login_required
def campaign_progress(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Progress"})


@login_required
def campaign_export(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Export"})


@login_required
def campaign_action(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Action"})


urlpatterns = [
    path("campaigns/<int:pk>/", campaign, name="campaign"),
    path("campaigns/<int:pk>/progress/", campaign_progress, name="campaign_progress"),
    path("campaigns/<int:pk>/export.csv", campaign_export, name="campaign_export"),
    path("campaigns/<int:pk>/action/<str:action>/", campaign_action, name="campaign_action"),
]
