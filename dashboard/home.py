"""Dashboard pages: home (placeholder until built)."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def home(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Home"})


urlpatterns = [
    path("", home, name="home"),
]
