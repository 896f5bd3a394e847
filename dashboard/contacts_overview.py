"""Dashboard pages: contacts overview (placeholder until built)."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def contacts(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return render(request, "dashboard/home.html", {"title": "Contacts"})


urlpatterns = [
    path("contacts/", contacts, name="contacts"),
]
