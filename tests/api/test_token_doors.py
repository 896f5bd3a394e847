"""Every door to API tokens: `manage.py api token`, the dashboard's API tokens page and the
admin. Each shows a token's text once (never its hash), revokes, and audits both."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from api import tokens
from api.models import ApiToken
from audit.models import AuditEvent
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db

CREATED, REVOKED = AuditEvent.Action.API_TOKEN_CREATED, AuditEvent.Action.API_TOKEN_REVOKED


def cli(*args: str) -> tuple[str, str]:
    """(stdout, stderr) of one `api` command."""
    out, err = io.StringIO(), io.StringIO()
    call_command("api", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args: str) -> str:
    """The one line a refused `api` command exits 1 with."""
    with pytest.raises(CommandError) as excinfo:
        cli(*args)
    assert excinfo.value.returncode == 1
    text = str(excinfo.value)
    assert text and "\n" not in text
    return text


def works(text: str) -> bool:
    return bool(ApiClient(text).get("/api/v1/token").status_code == 200)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def superuser(make_user: Callable[..., User], name: str = "boss") -> User:
    boss = make_user(name)
    boss.is_superuser = True
    boss.save()
    return boss


def never_shown(text: str, *seen: str) -> None:
    """Neither the token's text nor its hash is in any of `seen`, nor in the audit log."""
    digest = ApiToken.objects.get(key_id=text.split("_")[1]).digest
    logged = json.dumps(list(AuditEvent.objects.values("detail", "object_id")))
    for where in (*seen, logged):
        assert text not in where and digest not in where


# --- the command line ----------------------------------------------------------------------


def test_create_prints_the_token_alone_on_stdout_and_it_works(marketer: User) -> None:
    out, err = cli("token", "create", "--user", "mia", "--scope", "contacts:read")
    assert out.endswith("\n") and out.count("\n") == 1
    text = out.strip()
    token = ApiToken.objects.get()
    assert text.startswith(f"hrld_{token.key_id}_")
    assert works(text)
    assert f"created API token {token.pk}" in err and "not shown again" in err
    assert "never expires" in err and token.expires_at is None
    assert token.name == "command line" and token.user == marketer
    event = AuditEvent.objects.get(action=CREATED)
    assert event.object_id == str(token.pk) and event.actor is None
    assert event.detail == {
        "door": "cli",
        "user": "mia",
        "name": "command line",
        "key_id": token.key_id,
        "scopes": ["contacts:read"],
        "expires_at": None,
    }
    never_shown(text, err)


def cli_create(*args: str) -> ApiToken:
    out, _ = cli("token", "create", "--user", "mia", *args)
    found = ApiToken.objects.authenticate(out.strip())
    assert found is not None
    return found


def test_scopes_may_be_repeated_or_given_several_at_once(marketer: User) -> None:
    token = cli_create("--scope", "campaigns:read", "contacts:read", "--scope", "contacts:write")
    assert token.scopes == ["contacts:read", "contacts:write", "campaigns:read"]
    token = cli_create("--scope", "contacts:read campaigns:read", "--name", "shop")
    assert token.scopes == ["contacts:read", "campaigns:read"] and token.name == "shop"


def test_expires_gives_the_token_days_to_live(marketer: User) -> None:
    token = cli_create("--scope", "contacts:read", "--expires", "30")
    assert token.expires_at is not None
    left = token.expires_at - timezone.now()
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)


def test_an_unknown_user_scope_or_a_bad_expiry_is_a_clear_error(
    marketer: User, make_user: Callable[..., User]
) -> None:
    assert refused("token", "create", "--user", "nemo", "--scope", "contacts:read") == (
        "no user named 'nemo'"
    )
    message = refused("token", "create", "--user", "mia", "--scope", "contacts:read", "all")
    assert message.startswith("unknown scope all: scopes are contacts:read, contacts:write")
    for days in ("0", "-3", "3651"):
        message = refused("token", "create", "--user", "mia", "--scope", "contacts:read",
                          "--expires", days)  # fmt: skip
        assert message == "--expires: A token expires after 1 to 3650 days, or never."
    message = refused("token", "create", "--user", "mia", "--scope", "contacts:read",
                      "--name", "x" * 101)  # fmt: skip
    assert message == "--name: A name has at most 100 characters."
    gone = make_user("gone", "Marketers")
    gone.is_active = False
    gone.save()
    message = refused("token", "create", "--user", "gone", "--scope", "contacts:read")
    assert "inactive" in message
    assert not ApiToken.objects.exists() and not AuditEvent.objects.filter(action=CREATED)


def test_a_scope_the_user_cannot_use_is_made_with_a_warning(approver: User) -> None:
    _, err = cli("token", "create", "--user", "arno", "--scope", "contacts:read campaigns:write")
    assert "warning: arno's permissions give campaigns:write no use yet" in err
    assert "contacts:read" not in err.split("\n")[0]
    assert ApiToken.objects.get().scopes == ["contacts:read", "campaigns:write"]


def test_list_shows_each_token_s_state_never_its_secret(marketer: User, approver: User) -> None:
    texts = {}
    for name, user in (("shop", "mia"), ("old", "mia"), ("short", "mia"), ("crm", "arno")):
        out, _ = cli("token", "create", "--user", user, "--scope", "contacts:read", "--name",
                     name, "--expires", "7")  # fmt: skip
        texts[name] = out.strip()
    ApiToken.objects.get(name="old").revoke()
    ApiToken.objects.filter(name="short").update(expires_at=timezone.now() - timedelta(days=1))
    ApiToken.objects.filter(name="shop").update(last_used_at=timezone.now())

    listed, _ = cli("token", "list", "--json")
    rows = json.loads(listed)
    assert [row["name"] for row in rows] == ["crm", "short", "old", "shop"]
    assert {row["name"]: row["state"] for row in rows} == {
        "crm": "active",
        "short": "expired",
        "old": "revoked",
        "shop": "active",
    }
    shop = rows[-1]
    token = ApiToken.objects.get(name="shop")
    assert set(shop) == {
        "id", "name", "shown", "user", "scopes", "state", "expires_at", "last_used_at",
        "created_at",
    }  # fmt: skip
    assert shop["id"] == token.pk and shop["user"] == "mia"
    assert shop["shown"] == f"hrld_{token.key_id}_…"
    assert shop["scopes"] == ["contacts:read"] and shop["last_used_at"] is not None
    assert rows[0]["last_used_at"] is None
    assert [
        row["name"] for row in json.loads(cli("token", "list", "--user", "arno", "--json")[0])
    ] == ["crm"]
    table, _ = cli("token", "list")
    header, *lines = table.splitlines()
    assert header.split() == ["ID", "NAME", "USER", "SCOPES", "STATE", "EXPIRES", "LAST", "USED",
                              "CREATED"]  # fmt: skip
    assert len(lines) == 4 and "revoked" in lines[2] and "never" in lines[0]
    for text in texts.values():
        never_shown(text, listed, table)
    assert refused("token", "list", "--user", "nemo") == "no user named 'nemo'"


def test_list_says_how_to_make_the_first_token(db: Any) -> None:
    assert cli("token", "list")[0].startswith("no API tokens: make one with `api token create")
    assert cli("token", "list", "--json")[0].strip() == "[]"


def test_revoke_stops_the_token_at_once_and_is_audited(marketer: User) -> None:
    out, _ = cli("token", "create", "--user", "mia", "--scope", "contacts:read", "--name", "shop")
    text = out.strip()
    token = ApiToken.objects.get()
    assert (
        cli("token", "revoke", str(token.pk))[0] == f"revoked API token {token.pk} 'shop' of mia\n"
    )
    assert not works(text)
    assert ApiToken.objects.get().state == "revoked"
    again, _ = cli("token", "revoke", str(token.pk))
    assert again == f"API token {token.pk} 'shop' was revoked already\n"
    event = AuditEvent.objects.get(action=REVOKED)  # once: the second changed nothing
    assert event.detail == {"door": "cli", "user": "mia", "name": "shop", "key_id": token.key_id}
    assert refused("token", "revoke", "999") == "no API token with id 999"


def test_without_a_subcommand_the_command_prints_its_usage(db: Any) -> None:
    for args in ((), ("token",)):
        out = io.StringIO()
        with pytest.raises(CommandError) as excinfo:
            call_command("api", *args, stdout=out, stderr=io.StringIO())
        assert excinfo.value.returncode == 2
        assert "create" in out.getvalue() or "token" in out.getvalue()


# --- the dashboard -------------------------------------------------------------------------

FORM = {"name": "Shop checkout", "scopes": ["contacts:read"], "expires_in_days": "90"}


def test_a_token_made_in_the_dashboard_is_shown_once(marketer: User) -> None:
    client = signed_in(marketer)
    made = client.post("/api-tokens/", FORM)
    assert made.status_code == 302 and made["Location"] == "/api-tokens/"
    token = ApiToken.objects.get()
    page = client.get("/api-tokens/").content.decode()
    start = page.index('id="new-token-text"')
    text = page[start:].split('value="', 1)[1].split('"', 1)[0]
    assert text.startswith(f"hrld_{token.key_id}_") and works(text)
    assert "it will not be shown again" in page
    assert "hrld_" in page.replace(text, "")  # the list names it by its public part
    again = client.get("/api-tokens/").content.decode()
    assert text not in again and 'id="new-token-text"' not in again
    assert text not in json.dumps(dict(client.session.items()))
    assert token.name == "Shop checkout" and token.scopes == ["contacts:read"]
    assert token.created_by == marketer
    left = token.expires_at - timezone.now() if token.expires_at else None
    assert left is not None and timedelta(days=89, hours=23) < left <= timedelta(days=90)
    event = AuditEvent.objects.get(action=CREATED)
    assert event.actor == marketer and event.detail["door"] == "dashboard"
    never_shown(text, made.content.decode(), made["Location"], again)


def test_the_form_offers_90_days_and_never(marketer: User) -> None:
    client = signed_in(marketer)
    form = client.get("/api-tokens/").context["form"]
    assert form["expires_in_days"].value() == 90
    client.post("/api-tokens/", {**FORM, "expires_in_days": "", "never_expires": "on"})
    assert ApiToken.objects.get().expires_at is None
    answer = client.post("/api-tokens/", {**FORM, "expires_in_days": ""})
    assert answer.status_code == 200 and ApiToken.objects.count() == 1
    assert answer.context["form"].errors == {
        "expires_in_days": ["Give a number of days, or tick Never expires."]
    }
    answer = client.post("/api-tokens/", {**FORM, "name": " ", "scopes": []})
    assert set(answer.context["form"].errors) == {"name", "scopes"}
    assert ApiToken.objects.count() == 1


def test_only_scopes_the_user_can_use_are_offered(
    approver: User, marketer: User, make_user: Callable[..., User]
) -> None:
    def offered(user: User) -> list[str]:
        form = signed_in(user).get("/api-tokens/").context["form"]
        return [value for value, _ in form.fields["scopes"].choices]

    assert offered(approver) == ["contacts:read", "campaigns:read"]
    assert offered(marketer) == [
        "contacts:read", "contacts:write", "campaigns:read", "campaigns:write", "messages:send"
    ]  # fmt: skip
    assert offered(superuser(make_user)) == offered(marketer)
    page = signed_in(approver).get("/api-tokens/").content.decode()
    assert "Not offered: contacts:write, campaigns:write, messages:send" in page
    answer = signed_in(approver).post("/api-tokens/", {**FORM, "scopes": ["campaigns:write"]})
    assert answer.status_code == 200 and "scopes" in answer.context["form"].errors
    assert not ApiToken.objects.exists()


def test_users_without_a_role_have_no_token_page(make_user: Callable[..., User]) -> None:
    nobody = make_user("stan")  # staff, in no group: no scope would be of use
    client = signed_in(nobody)
    assert client.get("/api-tokens/").status_code == 403
    assert client.post("/api-tokens/", FORM).status_code == 403
    assert "API tokens" not in client.get("/").content.decode()
    assert not ApiToken.objects.exists()
    assert Client().get("/api-tokens/")["Location"].startswith("/accounts/login/")


def test_the_menu_links_the_page_for_whoever_may_hold_tokens(approver: User) -> None:
    page = signed_in(approver).get("/").content.decode()
    assert '<a href="/api-tokens/">API tokens</a>' in page


def test_each_user_sees_and_revokes_only_their_own_tokens(
    marketer: User, approver: User, make_user: Callable[..., User]
) -> None:
    mine, my_text = tokens.issue(marketer, "shop", ["contacts:read"], 90, by=marketer, door="t")
    theirs, their_text = tokens.issue(approver, "crm", ["contacts:read"], 90, by=approver, door="t")
    client = signed_in(marketer)
    page = client.get("/api-tokens/")
    assert [t.name for t in page.context["page"].object_list] == ["shop"]
    assert client.post(f"/api-tokens/{theirs.pk}/revoke/").status_code == 404
    assert works(their_text)
    answer = client.post(f"/api-tokens/{mine.pk}/revoke/", follow=True)
    assert answer.redirect_chain == [("/api-tokens/", 302)]
    assert "Revoked “shop”" in answer.content.decode() and not works(my_text)
    event = AuditEvent.objects.get(action=REVOKED)
    assert event.actor == marketer and event.detail["door"] == "dashboard"
    again = client.post(f"/api-tokens/{mine.pk}/revoke/", follow=True)
    assert "was revoked already" in again.content.decode()
    assert AuditEvent.objects.filter(action=REVOKED).count() == 1
    assert client.get(f"/api-tokens/{mine.pk}/revoke/").status_code == 405

    boss = signed_in(superuser(make_user))
    listed = boss.get("/api-tokens/")
    assert {t.name for t in listed.context["page"].object_list} == {"shop", "crm"}
    assert listed.context["shows_owner"] and "arno" in listed.content.decode()
    boss.post(f"/api-tokens/{theirs.pk}/revoke/")
    assert not works(their_text)
    assert AuditEvent.objects.filter(action=REVOKED, actor__username="boss").count() == 1


def test_the_page_confirms_a_revocation_before_it_is_sent(marketer: User) -> None:
    token, _ = tokens.issue(marketer, "shop", ["contacts:read"], 90, by=marketer, door="t")
    page = signed_in(marketer).get("/api-tokens/").content.decode()
    form = page[page.index(f'action="/api-tokens/{token.pk}/revoke/"') :].split(">", 1)[0]
    assert 'data-confirm="Revoke “shop”?' in form
    assert "herald/confirm.js" in page and "<script>" not in page


# --- the admin -----------------------------------------------------------------------------


def test_the_admin_lists_tokens_and_never_shows_a_hash_or_an_add_form(
    marketer: User, make_user: Callable[..., User]
) -> None:
    token, text = tokens.issue(marketer, "shop", ["contacts:read", "campaigns:read"], 30,
                               by=marketer, door="t")  # fmt: skip
    client = signed_in(superuser(make_user))
    listing = client.get("/admin/api/apitoken/").content.decode()
    assert "shop" in listing and "contacts:read, campaigns:read" in listing
    assert token.shown in listing and "active" in listing
    detail = client.get(f"/admin/api/apitoken/{token.pk}/change/").content.decode()
    assert "shop" in detail and "Revoked at" in detail
    assert client.get("/admin/api/apitoken/add/").status_code == 403
    assert client.post(f"/admin/api/apitoken/{token.pk}/change/", {"name": "x"}).status_code == 403
    never_shown(text, listing, detail)
    assert ApiToken.objects.get().name == "shop"


def test_the_admin_filters_tokens_by_state_and_scope(
    marketer: User, make_user: Callable[..., User]
) -> None:
    made = {
        name: tokens.issue(marketer, name, scopes, 30, by=marketer, door="t")[0]
        for name, scopes in (
            ("reader", ["contacts:read"]),
            ("writer", ["contacts:write"]),
            ("sender", ["contacts:read", "messages:send"]),
        )
    }
    made["writer"].revoke()
    ApiToken.objects.filter(pk=made["sender"].pk).update(expires_at=timezone.now())
    client = signed_in(superuser(make_user))

    def listed(query: str) -> set[str]:
        answer = client.get(f"/admin/api/apitoken/?{query}")
        return {token.name for token in answer.context["cl"].result_list}

    assert listed("state=active") == {"reader"}
    assert listed("state=revoked") == {"writer"}
    assert listed("state=expired") == {"sender"}
    assert listed("scope=contacts:read") == {"reader", "sender"}
    assert listed("scope=messages:send") == {"sender"}
    assert listed("q=writ") == {"writer"}


def test_the_admin_revokes_selected_tokens_and_says_how_many(
    marketer: User, make_user: Callable[..., User]
) -> None:
    shop, shop_text = tokens.issue(marketer, "shop", ["contacts:read"], 30, by=marketer, door="t")
    old, _ = tokens.issue(marketer, "old", ["contacts:read"], 30, by=marketer, door="t")
    old.revoke()
    client = signed_in(superuser(make_user))
    answer = client.post(
        "/admin/api/apitoken/",
        {"action": "revoke_selected", "_selected_action": [shop.pk, old.pk]},
        follow=True,
    )
    said = [str(message) for message in answer.context["messages"]]
    assert said == ["Revoked 1 of 2 selected tokens.", "1 were revoked already."]
    assert not works(shop_text)
    event = AuditEvent.objects.get(action=REVOKED)
    assert event.actor is not None and event.actor.username == "boss"
    assert event.detail["door"] == "admin" and event.object_id == str(shop.pk)


def test_staff_without_the_token_permission_cannot_revoke_in_the_admin(
    marketer: User, make_user: Callable[..., User]
) -> None:
    shop, text = tokens.issue(marketer, "shop", ["contacts:read"], 30, by=marketer, door="t")
    client = signed_in(marketer)
    answer = client.post(
        "/admin/api/apitoken/", {"action": "revoke_selected", "_selected_action": [shop.pk]}
    )
    assert answer.status_code == 403 and works(text)
