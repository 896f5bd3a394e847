"""403, 404 and 500 inside the dashboard's layout, with DEBUG off as in production.

The 500 page is drawn without the request or the database (either may be what failed),
and falls back to plain words if even it cannot be drawn.
"""

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, override_settings

from config.views import PLAIN_500

pytestmark = pytest.mark.urls("tests.config.error_urls")


def test_the_tests_run_with_debug_off() -> None:
    assert settings.DEBUG is False


@pytest.mark.django_db
def test_an_unknown_address_is_a_404_inside_the_layout_with_the_menu(
    client: Client, marketer: User
) -> None:
    client.force_login(marketer)
    response = client.get("/no/such/page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert "<title>Page not found · Herald</title>" in page and "<h1>Page not found</h1>" in page
    assert 'href="/static/herald/dashboard.css"' in page
    assert '<nav aria-label="Main">' in page and "Sign out" in page
    assert "<script" not in page


@pytest.mark.django_db
def test_a_campaign_that_does_not_exist_is_the_same_404(client: Client, marketer: User) -> None:
    client.force_login(marketer)
    response = client.get("/campaigns/999999/")
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in response.content.decode()


@pytest.mark.django_db
def test_a_refused_page_is_a_403_inside_the_layout_saying_whom_to_ask(
    client: Client, marketer: User
) -> None:
    client.force_login(marketer)
    with override_settings(HERALD_ACCESS_CONTACT="it-help@example.com"):
        response = client.get("/approvals/")
    page = response.content.decode()
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in page and '<nav aria-label="Main">' in page
    assert "Your account, mia, may not do this" in page and "it-help@example.com" in page


@pytest.mark.django_db
def test_a_form_without_its_csrf_token_is_a_403_inside_the_layout(marketer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    response = client.post("/campaigns/new/", {"name": "No token"})
    page = response.content.decode()
    assert response.status_code == 403
    assert "This form could not be accepted" in page and "Nothing was changed" in page
    assert 'href="/static/herald/dashboard.css"' in page


def test_a_failing_view_is_a_500_inside_the_layout_drawn_without_the_database() -> None:
    # No django_db mark: a query while drawing the page would raise, and the page would
    # fall back to its plain words, which the assertions below tell apart.
    client = Client(raise_request_exception=False)
    response = client.get("/fail/")
    page = response.content.decode()
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in page and "error-page" in page
    assert 'href="/static/herald/dashboard.css"' in page
    assert "RuntimeError" not in page and "a bug in a view" not in page
    assert "<nav" not in page  # no user, no menu: nothing that needs the request


def test_a_500_page_that_cannot_be_drawn_answers_in_plain_words(tmp_path: Path) -> None:
    (tmp_path / "500.html").write_text(
        '{% extends "dashboard/base.html" %}{% block content %}{% url "nowhere" %}{% endblock %}'
    )
    engine: dict[str, Any] = dict(settings.TEMPLATES[0])
    templates = [{**engine, "DIRS": [tmp_path, *engine["DIRS"]]}]
    client = Client(raise_request_exception=False)
    with override_settings(TEMPLATES=templates):
        response = client.get("/fail/")
    assert response.status_code == 500
    assert response.content.decode() == PLAIN_500
