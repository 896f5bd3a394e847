"""Every URL the site answers, for each kind of user, against a table written down here.

A URL pattern, admin model or admin action with no row in the tables below fails the test:
a new page has to be given its expected access on purpose, never left open by accident.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group as Role
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from api.models import ApiToken, WebhookDelivery, WebhookSubscription
from audit.models import AuditEvent
from campaigns.models import Campaign, CampaignTransition, MessageTemplate, TestNumber
from campaigns.segments import Segment
from contacts.models import Contact, Group, ImportJob, OptOut, Tag
from dashboard import urls as dashboard_urls
from messaging.models import (
    InboundMessage,
    Keyword,
    Message,
    ProviderAccount,
    StatusEvent,
    WebhookEvent,
    WorkerHeartbeat,
)

#: The signed-in users with no role come first: no staff flag and no group ("nobody"), the
#: staff flag and no group ("staff"), and Auditors (who may read the audit log, no more).
ROLES = ("anonymous", "nobody", "staff", "auditor", "marketer", "approver", "admin")
STAFF_ROLES = ROLES[2:]

# Outcomes of a GET: the status code, or where a redirect goes.
OK, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, NOT_ALLOWED = 200, 401, 403, 404, 405
LOGIN = "→login"  # the dashboard's sign-in page
ADMIN_LOGIN = "→admin-login"
REDIRECT = "→elsewhere"  # a redirect that is not a request to sign in


def row(
    anonymous: Any,
    nobody: Any,
    staff: Any,
    auditor: Any,
    marketer: Any,
    approver: Any,
    admin: Any,
) -> dict[str, Any]:
    outcomes = (anonymous, nobody, staff, auditor, marketer, approver, admin)
    return dict(zip(ROLES, outcomes, strict=True))


def everyone(outcome: Any) -> dict[str, Any]:
    return dict.fromkeys(ROLES, outcome)


def signed_in(outcome: Any) -> dict[str, Any]:
    """A page for anyone signed in, whatever their role."""
    return {**everyone(outcome), "anonymous": LOGIN}


def staff(no_role: Any, marketer: Any, approver: Any, admin: Any) -> dict[str, Any]:
    """An admin page: whoever has no staff flag is sent to the admin's sign-in.

    `no_role`: staff in no group, and Auditors (whose one model is in ADMIN_MODELS).
    """
    return row(ADMIN_LOGIN, ADMIN_LOGIN, no_role, no_role, marketer, approver, admin)


def dashboard(no_role: Any, marketer: Any, approver: Any, admin: Any) -> dict[str, Any]:
    """A dashboard page; `no_role`: nobody, staff and Auditors, who have no dashboard area."""
    return row(LOGIN, no_role, no_role, no_role, marketer, approver, admin)


PUBLIC = everyone(OK)

#: Every URL pattern other than the admin's per-model ones (those come from ADMIN_MODELS).
URLS: dict[str, dict[str, Any]] = {
    "healthz": PUBLIC,
    # Webhooks are public by design: a signature, not a session, lets a report in; GET is 405.
    "webhooks/bulksmsrates/<slug:account>/": everyone(NOT_ALLOWED),
    # Short links are public by design; an unknown code is the same plain 404 for anyone
    # (a live one redirects anyone: tests/messaging/test_short_links.py).
    "r/<str:code>": everyone(NOT_FOUND),
    # The API's schema and docs are public; every other API route needs a Bearer token, which
    # a signed-in session is not (tests/api/ checks each route's scopes and permissions).
    "api/v1/": PUBLIC,
    "api/v1/openapi.json": PUBLIC,
    "api/v1/docs": PUBLIC,
    "^api/": everyone(NOT_FOUND),
    # Sign-in and password pages.
    "accounts/login/": PUBLIC,
    "accounts/logout/": everyone(NOT_ALLOWED),  # POST only
    "accounts/password_change/": signed_in(OK),
    "accounts/password_change/done/": signed_in(OK),
    "accounts/password_reset/": PUBLIC,
    "accounts/password_reset/done/": PUBLIC,
    "accounts/reset/<uidb64>/<token>/": PUBLIC,  # says the link is invalid
    "accounts/reset/done/": PUBLIC,
    # Dashboard. Home is everyone's: its panels are the role's (no role: whom to ask).
    "": dashboard(OK, OK, OK, OK),
    "campaigns/new/": dashboard(FORBIDDEN, OK, FORBIDDEN, OK),
    # Pending: editable by marketers, the page saying it goes back to draft when saved.
    "campaigns/<int:pk>/edit/": dashboard(FORBIDDEN, OK, FORBIDDEN, OK),
    # The builder's live preview (JSON): POST only, and only for marketers.
    "campaigns/preview/": dashboard(FORBIDDEN, NOT_ALLOWED, FORBIDDEN, NOT_ALLOWED),
    "campaigns/<int:pk>/test/": dashboard(FORBIDDEN, OK, FORBIDDEN, OK),
    "campaigns/<int:pk>/": dashboard(FORBIDDEN, OK, OK, OK),
    # The campaign list: every campaign, for whoever may view campaigns.
    "campaigns/": dashboard(FORBIDDEN, OK, OK, OK),
    "campaigns/<int:pk>/duplicate/": dashboard(*[NOT_ALLOWED] * 4),  # POST only
    # Pending: not a draft, so marketers are sent back to its page; only marketers may.
    "campaigns/<int:pk>/delete/": dashboard(FORBIDDEN, REDIRECT, FORBIDDEN, REDIRECT),
    "campaigns/<int:pk>/progress/": dashboard(FORBIDDEN, OK, OK, OK),  # live counts (JSON)
    "campaigns/<int:pk>/export.csv": dashboard(FORBIDDEN, OK, OK, OK),
    # GET of a destructive action asks to confirm; the POST checks who may (below).
    "campaigns/<int:pk>/action/<str:action>/": dashboard(FORBIDDEN, OK, OK, OK),
    # Deciding on messages in doubt: POST only (who may: test_state_changing_posts_...).
    "campaigns/<int:pk>/in-doubt/<str:decision>/": dashboard(*[NOT_ALLOWED] * 4),
    "approvals/": dashboard(FORBIDDEN, FORBIDDEN, OK, OK),
    "approvals/<int:pk>/approve/": dashboard(*[NOT_ALLOWED] * 4),
    "approvals/<int:pk>/reject/": dashboard(*[NOT_ALLOWED] * 4),
    "contacts/": dashboard(FORBIDDEN, OK, OK, OK),
    # Contacts: viewing needs contacts.view_contact; each change the admin's permission.
    "contacts/search/": dashboard(FORBIDDEN, OK, OK, OK),
    "contacts/<int:pk>/": dashboard(FORBIDDEN, OK, OK, OK),
    "contacts/<int:pk>/opt-outs/": dashboard(*[NOT_ALLOWED] * 4),  # POST only
    "contacts/<int:pk>/erase/": dashboard(FORBIDDEN, OK, FORBIDDEN, OK),  # GET asks first
    "contacts/groups/<int:pk>/": dashboard(FORBIDDEN, OK, OK, OK),
    "contacts/groups/<int:pk>/members/": dashboard(*[NOT_ALLOWED] * 4),  # POST only
    "contacts/groups/<int:pk>/upload/": dashboard(*[NOT_ALLOWED] * 4),  # POST only
    "contacts/attributes/": dashboard(FORBIDDEN, OK, OK, OK),
    "contacts/import/": dashboard(FORBIDDEN, OK, FORBIDDEN, OK),
    "contacts/imports/<int:pk>/": dashboard(FORBIDDEN, OK, OK, OK),
    "contacts/imports/<int:pk>/progress/": dashboard(FORBIDDEN, OK, OK, OK),
    "contacts/imports/<int:pk>/mapping/": dashboard(*[NOT_ALLOWED] * 4),  # POST only
    "contacts/imports/<int:pk>/confirm/": dashboard(*[NOT_ALLOWED] * 4),  # POST only
    "contacts/imports/<int:pk>/discard/": dashboard(*[NOT_ALLOWED] * 4),  # POST only
    "contacts/imports/<int:pk>/errors.csv": dashboard(FORBIDDEN, OK, OK, OK),
    # The inbox: replies, contacts and messages to read; each action is a POST needing
    # messaging.reply_inbound (who may: tests/dashboard/test_inbox.py).
    "inbox/": dashboard(FORBIDDEN, OK, OK, OK),
    "inbox/<int:pk>/": dashboard(FORBIDDEN, OK, OK, OK),
    "inbox/<int:pk>/reply/": dashboard(*[NOT_ALLOWED] * 4),
    "inbox/<int:pk>/handled/": dashboard(*[NOT_ALLOWED] * 4),
    "inbox/<int:pk>/confirm-opt-out/": dashboard(*[NOT_ALLOWED] * 4),
    # Campaign and provider account names, counts and cost.
    "reports/": dashboard(FORBIDDEN, OK, OK, OK),
    # Segments: viewing needs campaigns.view_segment (approvers see one read-only); making,
    # changing and deleting need the admin's permissions.
    "segments/": dashboard(FORBIDDEN, OK, OK, OK),
    "segments/new/": dashboard(FORBIDDEN, OK, FORBIDDEN, OK),
    "segments/count/": dashboard(FORBIDDEN, NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED),  # POST only
    "segments/<int:pk>/": dashboard(FORBIDDEN, OK, OK, OK),
    "segments/<int:pk>/delete/": dashboard(FORBIDDEN, OK, FORBIDDEN, OK),  # GET asks first
    # API tokens: each user's own (a superuser's: everyone's), for whoever's permissions give
    # some scope a use; revoking is POST only (whose: tests/api/test_token_doors.py).
    "api-tokens/": dashboard(FORBIDDEN, OK, OK, OK),
    "api-tokens/<int:pk>/revoke/": dashboard(*[NOT_ALLOWED] * 4),
    # Outgoing webhooks ship phone numbers out: api.manage_webhooks alone (superusers);
    # the actions are POST only (tests/api/test_webhooks_pages.py).
    "outgoing-webhooks/": dashboard(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    "outgoing-webhooks/new/": dashboard(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    "outgoing-webhooks/<int:pk>/": dashboard(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    "outgoing-webhooks/<int:pk>/rotate/": dashboard(*[NOT_ALLOWED] * 4),
    "outgoing-webhooks/<int:pk>/enable/": dashboard(*[NOT_ALLOWED] * 4),
    "outgoing-webhooks/<int:pk>/delete/": dashboard(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    "outgoing-webhooks/deliveries/": dashboard(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    "outgoing-webhooks/deliveries/<int:pk>/": dashboard(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    "outgoing-webhooks/deliveries/<int:pk>/send-again/": dashboard(*[NOT_ALLOWED] * 4),
    # The admin's own pages.
    "admin/": staff(OK, OK, OK, OK),
    "admin/login/": row(OK, OK, REDIRECT, REDIRECT, REDIRECT, REDIRECT, REDIRECT),
    # POST only; whoever is not staff is sent to the admin's index (and on to sign in).
    "admin/logout/": row(REDIRECT, REDIRECT, *[NOT_ALLOWED] * 5),
    "admin/password_change/": staff(OK, OK, OK, OK),
    "admin/password_change/done/": staff(OK, OK, OK, OK),
    "admin/autocomplete/": staff(FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN),  # no model asked
    "admin/jsi18n/": staff(OK, OK, OK, OK),
    "admin/r/<path:content_type_id>/<path:object_id>/": staff(*[NOT_FOUND] * 4),
    "admin/^(?P<app_label>api|audit|auth|axes|campaigns|contacts|django_q|messaging)/$": staff(
        NOT_FOUND,
        NOT_FOUND,
        NOT_FOUND,
        OK,  # app "auth": only superusers see any of its models
    ),
    "admin/(?P<url>.*)$": staff(*[NOT_FOUND] * 4),
    "admin/auth/user/<id>/password/": staff(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK),
    # The admin's extra pages.
    "admin/contacts/contact/export/": staff(FORBIDDEN, OK, OK, OK),  # approvers view contacts
    "admin/contacts/optout/import/": staff(FORBIDDEN, OK, FORBIDDEN, OK),  # adds opt-outs
    "admin/contacts/optout/export/": staff(FORBIDDEN, OK, OK, OK),
    "admin/contacts/importjob/<int:pk>/progress/": staff(FORBIDDEN, OK, OK, OK),
    # Not found without the view permission: it does not say whether the file exists.
    "admin/contacts/importjob/<int:pk>/errors.csv": staff(NOT_FOUND, OK, OK, OK),
    "admin/contacts/importjob/^(?P<pk>\\d+)/(?P<action>confirm|resume|rollback)/$": staff(
        *[FORBIDDEN] * 4  # POST only, and only for importers
    ),
    # GET asks to confirm; only those who may take the action are asked.
    "admin/campaigns/campaign/<int:pk>/transition/<str:action>/": staff(
        FORBIDDEN, OK, FORBIDDEN, OK
    ),
    "admin/campaigns/campaign/<int:pk>/progress/": staff(FORBIDDEN, OK, OK, OK),
    "admin/campaigns/campaign/<int:pk>/test/": staff(FORBIDDEN, OK, FORBIDDEN, OK),
    # POST only (what a POST may do: test_state_changing_posts_...).
    "admin/campaigns/pendingapproval/<int:pk>/approve/": staff(*[NOT_ALLOWED] * 4),
    "admin/campaigns/pendingapproval/<int:pk>/reject/": staff(*[NOT_ALLOWED] * 4),
}

#: Addresses whose query makes a URL pattern answer with other data: each has its own row.
QUERY_URLS: dict[str, tuple[str, dict[str, Any]]] = {
    "/reports/?format=csv": ("reports/", dashboard(FORBIDDEN, OK, OK, OK)),
}

#: What each role may do with each admin model: v(iew) a(dd) c(hange) d(elete).
#: Staff in no group and Auditors may do nothing with a model unless its row names them.
ADMIN_MODELS: dict[str, dict[str, str]] = {
    "auth/group": {"marketer": "", "approver": "", "admin": "vacd"},
    "auth/user": {"marketer": "", "approver": "", "admin": "vacd"},
    "django_q/schedule": {"marketer": "", "approver": "", "admin": "vacd"},
    "django_q/success": {"marketer": "", "approver": "", "admin": "vd"},
    "django_q/failure": {"marketer": "", "approver": "", "admin": "vd"},
    "django_q/ormq": {"marketer": "", "approver": "", "admin": "vd"},
    "axes/accessattempt": {"marketer": "", "approver": "", "admin": "vd"},
    "axes/accesslog": {"marketer": "", "approver": "", "admin": "vd"},
    "axes/accessfailurelog": {"marketer": "", "approver": "", "admin": "vd"},
    "audit/auditevent": {"auditor": "v", "marketer": "", "approver": "", "admin": "v"},
    "contacts/group": {"marketer": "vac", "approver": "v", "admin": "vacd"},
    "contacts/tag": {"marketer": "vac", "approver": "v", "admin": "vacd"},
    "contacts/contact": {"marketer": "vacd", "approver": "v", "admin": "vacd"},
    "contacts/optout": {"marketer": "va", "approver": "v", "admin": "vacd"},
    "contacts/importjob": {"marketer": "vad", "approver": "v", "admin": "vad"},
    "messaging/provideraccount": {"marketer": "v", "approver": "v", "admin": "vacd"},
    "messaging/message": {"marketer": "v", "approver": "v", "admin": "v"},
    "messaging/statusevent": {"marketer": "v", "approver": "v", "admin": "v"},
    "messaging/workerheartbeat": {"marketer": "", "approver": "", "admin": "v"},
    "messaging/webhookevent": {"marketer": "", "approver": "", "admin": "v"},
    # Replies are written by Herald alone; approvers keep the keyword lists.
    "messaging/inboundmessage": {"marketer": "v", "approver": "v", "admin": "v"},
    "messaging/keyword": {"marketer": "v", "approver": "vacd", "admin": "vacd"},
    "campaigns/messagetemplate": {"marketer": "vacd", "approver": "v", "admin": "vacd"},
    "campaigns/campaigntransition": {"marketer": "v", "approver": "v", "admin": "v"},
    "campaigns/campaign": {"marketer": "vac", "approver": "v", "admin": "vacd"},
    "campaigns/pendingapproval": {"marketer": "", "approver": "v", "admin": "v"},
    "campaigns/testnumber": {"marketer": "", "approver": "", "admin": "vacd"},  # no role's
    "campaigns/segment": {"marketer": "vacd", "approver": "v", "admin": "vacd"},
    # Made in the dashboard or the CLI (their text shown once there); looked at and revoked.
    "api/apitoken": {"marketer": "", "approver": "", "admin": "v"},
    # Made in the dashboard (the secret shown once); deliveries are a read-only log.
    "api/webhooksubscription": {"marketer": "", "approver": "", "admin": "vcd"},
    "api/webhookdelivery": {"marketer": "", "approver": "", "admin": "v"},
}

#: The admin actions each role is offered on each model's list.
#: (Offered is not reachable: a list the role may not view answers 403 to the action's POST.)
NONE: dict[str, set[str]] = {role: set() for role in STAFF_ROLES}
DELETE_FOR_ADMIN: dict[str, set[str]] = {**NONE, "admin": {"delete_selected"}}
RESUBMIT = {role: {"resubmit_task"} for role in STAFF_ROLES}
ADMIN_ACTIONS: dict[str, dict[str, set[str]]] = {
    "auth/group": DELETE_FOR_ADMIN,
    "auth/user": DELETE_FOR_ADMIN,
    "django_q/schedule": DELETE_FOR_ADMIN,
    "django_q/success": {**RESUBMIT, "admin": {"delete_selected", "resubmit_task"}},
    "django_q/failure": {**RESUBMIT, "admin": {"delete_selected", "resubmit_task"}},
    "django_q/ormq": DELETE_FOR_ADMIN,
    "axes/accessattempt": {
        **{role: {"cleanup_expired_attempts"} for role in STAFF_ROLES},
        "admin": {"cleanup_expired_attempts", "delete_selected"},
    },
    "axes/accesslog": DELETE_FOR_ADMIN,
    "axes/accessfailurelog": DELETE_FOR_ADMIN,
    "audit/auditevent": NONE,
    "contacts/group": DELETE_FOR_ADMIN,
    "contacts/tag": DELETE_FOR_ADMIN,
    "contacts/contact": {
        **NONE,
        "marketer": {"delete_selected", "erase_contacts"},
        "admin": {"delete_selected", "erase_contacts"},
    },
    "contacts/optout": DELETE_FOR_ADMIN,
    "contacts/importjob": {**DELETE_FOR_ADMIN, "marketer": {"delete_selected"}},
    "messaging/provideraccount": {
        **{role: {"check_connection"} for role in STAFF_ROLES},
        "admin": {"check_connection", "delete_selected"},
    },
    "messaging/message": {
        **NONE,
        "marketer": {"mark_sent", "send_again"},  # messages in doubt
        "admin": {"mark_sent", "send_again"},
    },
    "messaging/statusevent": NONE,
    "messaging/workerheartbeat": NONE,
    "messaging/webhookevent": NONE,
    "messaging/inboundmessage": {
        **NONE,
        **{role: {"confirm_opt_outs"} for role in ("marketer", "approver", "admin")},
    },
    "messaging/keyword": {**DELETE_FOR_ADMIN, "approver": {"delete_selected"}},
    "campaigns/messagetemplate": {**DELETE_FOR_ADMIN, "marketer": {"delete_selected"}},
    "campaigns/campaigntransition": NONE,
    "campaigns/campaign": {
        **NONE,
        "marketer": {"duplicate_selected", "pause_selected", "resume_selected", "submit_selected"},
        "approver": {"approve_selected"},
        "admin": {
            "approve_selected",
            "delete_selected",
            "duplicate_selected",
            "pause_selected",
            "resume_selected",
            "submit_selected",
        },
    },
    "campaigns/pendingapproval": NONE,
    "campaigns/testnumber": DELETE_FOR_ADMIN,
    "campaigns/segment": {**DELETE_FOR_ADMIN, "marketer": {"delete_selected"}},
    "api/apitoken": {**NONE, "admin": {"revoke_selected"}},
    "api/webhooksubscription": {**NONE, "admin": {"delete_selected", "enable_selected"}},
    "api/webhookdelivery": {**NONE, "admin": {"send_again"}},
}


def admin_expectations(model: str) -> dict[str, dict[str, Any]]:
    """The rows of one admin model's standard pages, from what each role may do with it."""
    may = {**dict.fromkeys(ROLES, ""), **ADMIN_MODELS[model]}

    def page(needs: str, granted: Any = OK) -> dict[str, Any]:
        outcomes = {
            role: granted if any(letter in may[role] for letter in needs) else FORBIDDEN
            for role in ROLES
        }
        return {**outcomes, "anonymous": ADMIN_LOGIN, "nobody": ADMIN_LOGIN}

    base = f"admin/{model}/"
    return {
        base: page("vc"),
        f"{base}add/": page("a"),
        f"{base}<path:object_id>/history/": page("vc"),
        f"{base}<path:object_id>/delete/": page("d"),
        f"{base}<path:object_id>/change/": page("vc"),
        # The old-style address redirects to the change page, for any staff user.
        f"{base}<path:object_id>/": page("vacd", REDIRECT) | dict.fromkeys(STAFF_ROLES, REDIRECT),
    }


def url_patterns(patterns: list[Any] | None = None, prefix: str = "") -> Iterator[str]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield _apps_sorted(prefix + str(pattern.pattern))


def _apps_sorted(pattern: str) -> str:
    """The admin's app index pattern lists the apps in the order their admin modules were
    loaded, which no user sees: in alphabetical order here."""
    return re.sub(
        r"\(\?P<app_label>([^)]*)\)",
        lambda found: f"(?P<app_label>{'|'.join(sorted(found[1].split('|')))})",
        pattern,
    )


def admin_model_key(model: Any) -> str:
    return f"{model._meta.app_label}/{model._meta.model_name}"


#: Admin model pages that differ from what the permissions alone say.
ADMIN_EXCEPTIONS: dict[str, dict[str, Any]] = {
    # The approval queue shows no form of its own: it sends to the campaign's page.
    "admin/campaigns/pendingapproval/<path:object_id>/change/": staff(
        FORBIDDEN, FORBIDDEN, REDIRECT, REDIRECT
    ),
}


def expectations() -> dict[str, dict[str, Any]]:
    admin.autodiscover()  # as the URLconf does (config/apps.py)
    table = dict(URLS)
    table |= {p: everyone(_token_route_answer(p)) for p in url_patterns() if _token_route(p)}
    for model in admin.site._registry:
        key = admin_model_key(model)
        if key in ADMIN_MODELS:
            table.update(admin_expectations(key))
    return table | ADMIN_EXCEPTIONS


def test_every_url_pattern_and_admin_model_has_a_row() -> None:
    table = expectations()
    patterns = list(url_patterns())
    missing = [p for p in patterns if p not in table]
    assert not missing, f"URL patterns with no expected access in the table: {missing}"
    registered = {admin_model_key(m) for m in admin.site._registry}
    assert registered == set(ADMIN_MODELS), "admin models and ADMIN_MODELS differ"
    stale = set(table) - set(patterns)
    assert not stale, f"rows for URLs that no longer exist: {stale}"
    unknown = {url for url, (pattern, _) in QUERY_URLS.items() if pattern not in patterns}
    assert not unknown, f"addresses of URLs that no longer exist: {unknown}"


@pytest.fixture
def world(make_user: Callable[..., User], simulator: ProviderAccount) -> dict[str, Any]:
    """One row of every model the admin shows, and a campaign waiting for approval."""
    marketer = make_user("mia", "Marketers")
    group = Group.objects.create(name="Customers")
    contact = Contact.objects.create(phone="+447911200001", first_name="Ann")
    contact.groups.add(group)
    campaign = Campaign.objects.create(
        name="Spring", provider_account=simulator, body="Hi", created_by=marketer
    )
    campaign.groups.add(group)
    campaign.submit(by=marketer)
    message = Message.objects.create(
        provider_account=simulator, phone=contact.phone, body="Hi", client_ref="ref-1"
    )
    job = ImportJob.objects.create(
        original_name="people.csv",
        region="GB",
        created_by=marketer,
        status=ImportJob.Status.COMPLETED,
    )
    job.error_report.save("errors.csv", ContentFile(b"line,error\n2,bad\n"))
    now = timezone.now()
    task = {"func": "math.floor", "started": now, "stopped": now}
    subscription = WebhookSubscription.objects.create_with_secret(
        "https://crm.example/hooks", ["opt_out"]
    )[0]
    objects = {
        "auth/group": Role.objects.get(name="Marketers"),
        "auth/user": marketer,
        "django_q/schedule": Schedule.objects.first(),
        "django_q/success": Task.objects.create(id="s1", name="ok", success=True, **task),
        "django_q/failure": Task.objects.create(id="f1", name="no", success=False, **task),
        "django_q/ormq": OrmQ.objects.create(key="herald", payload="x", lock=now),
        "axes/accessattempt": AccessAttempt.objects.create(
            username="x", ip_address="203.0.113.1", failures_since_start=1, attempt_time=now
        ),
        "axes/accesslog": AccessLog.objects.create(username="x", ip_address="203.0.113.1"),
        "axes/accessfailurelog": AccessFailureLog.objects.create(
            username="x", ip_address="203.0.113.1", locked_out=False
        ),
        "audit/auditevent": AuditEvent.objects.first(),
        "contacts/group": group,
        "contacts/tag": Tag.objects.create(name="vip"),
        "contacts/contact": contact,
        "contacts/optout": OptOut.objects.create(phone="+447911200002"),
        "contacts/importjob": job,
        "messaging/provideraccount": simulator,
        "messaging/message": message,
        "messaging/statusevent": StatusEvent.objects.create(
            message=message, event_id="e1", status="sent", occurred_at=now
        ),
        "messaging/workerheartbeat": WorkerHeartbeat.objects.create(name="w1", seen_at=now),
        "messaging/webhookevent": WebhookEvent.objects.create(
            provider_account=simulator, webhook_id="wh1"
        ),
        "messaging/inboundmessage": InboundMessage.objects.create(
            provider_account=simulator, phone="+447911200003", body="hi"
        ),
        "messaging/keyword": Keyword.objects.first(),
        "campaigns/messagetemplate": MessageTemplate.objects.create(name="t", body="Hi"),
        "campaigns/campaigntransition": CampaignTransition.objects.first(),
        "campaigns/campaign": campaign,
        "campaigns/pendingapproval": campaign,
        "campaigns/testnumber": TestNumber.objects.create(user=marketer, phone="+447911200009"),
        "campaigns/segment": Segment.objects.create(name="Leeds", rules=["attr.city = Leeds"]),
        "api/apitoken": ApiToken.objects.issue(marketer, "shop", ["contacts:read"])[0],
        "api/webhooksubscription": subscription,
        "api/webhookdelivery": WebhookDelivery.objects.create(
            subscription=subscription, event_id="msg_1", event_type="opt_out", payload="{}"
        ),
    }
    assert all(obj is not None for obj in objects.values())
    reply = InboundMessage.objects.create(
        provider_account=simulator, phone=contact.phone, body="Hi"
    )
    return {
        "objects": objects,
        "campaign": campaign,
        "job": job,
        "account": simulator,
        "reply": reply,
    }


def _token_route(pattern: str) -> bool:
    return pattern.startswith("api/v1/") and pattern not in URLS


def _token_route_answer(pattern: str) -> int:
    """401 (no token) for a route that answers GET; 405 for one that takes only other methods,
    which ninja refuses before asking for a token."""
    from api.main import api

    paths = api.get_openapi_schema(path_prefix="/api/v1/")["paths"]
    as_documented = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", pattern)
    return UNAUTHORIZED if "get" in paths[as_documented] else NOT_ALLOWED


def concrete(pattern: str, world: dict[str, Any]) -> str:
    """An address the pattern matches, about the objects of `world`."""
    campaign, job = world["campaign"], world["job"]
    special = {
        "": "/",
        "webhooks/bulksmsrates/<slug:account>/": f"/webhooks/bulksmsrates/{world['account'].name}/",
        "accounts/reset/<uidb64>/<token>/": "/accounts/reset/MQ/bad-token/",
        "r/<str:code>": "/r/AAAAAAAA",
        "admin/r/<path:content_type_id>/<path:object_id>/": "/admin/r/999999/1/",
        "admin/^(?P<app_label>api|audit|auth|axes|campaigns|contacts|django_q|messaging)/$": (
            "/admin/auth/"
        ),
        "admin/(?P<url>.*)$": "/admin/no-such-page/",
        "admin/auth/user/<id>/password/": f"/admin/auth/user/{world['objects']['auth/user'].pk}"
        "/password/",
        "admin/contacts/importjob/^(?P<pk>\\d+)/(?P<action>confirm|resume|rollback)/$": (
            f"/admin/contacts/importjob/{job.pk}/confirm/"
        ),
    }
    if pattern in special:
        return special[pattern]
    if pattern.startswith("api/"):
        return "/" + re.sub(r"<(\w+:)?\w+>", "1", pattern).replace("^", "")
    if pattern.startswith("outgoing-webhooks/"):
        kind = "webhookdelivery" if "deliveries/" in pattern else "webhooksubscription"
        return "/" + pattern.replace("<int:pk>", str(world["objects"][f"api/{kind}"].pk))
    if pattern.startswith("inbox/"):
        return "/" + pattern.replace("<int:pk>", str(world["reply"].pk))
    if pattern.startswith("segments/"):
        return "/" + pattern.replace("<int:pk>", str(world["objects"]["campaigns/segment"].pk))
    if pattern.startswith("contacts/"):  # the dashboard's contact, group and import pages
        kind = (
            "importjob" if "imports/" in pattern else "group" if "groups/" in pattern else "contact"
        )
        return "/" + pattern.replace("<int:pk>", str(world["objects"][f"contacts/{kind}"].pk))
    model = re.match(r"admin/(\w+/\w+)/<path:object_id>/", pattern)
    url = "/" + pattern
    if model:
        url = url.replace("<path:object_id>", str(world["objects"][model.group(1)].pk))
    url = url.replace("<int:pk>", str(job.pk if "importjob" in pattern else campaign.pk))
    return url.replace("<str:action>", "cancel")


def outcome(response: Any) -> Any:
    if response.status_code in (301, 302):
        location = response["Location"]
        if location.startswith("/accounts/login/"):
            return LOGIN
        if location.startswith("/admin/login/"):
            return ADMIN_LOGIN
        return REDIRECT
    return response.status_code


@pytest.fixture
def users(make_user: Callable[..., User], world: dict[str, Any]) -> dict[str, Any]:
    boss = make_user("boss")
    User.objects.filter(pk=boss.pk).update(is_superuser=True)
    nobody = make_user("nobody")
    User.objects.filter(pk=nobody.pk).update(is_staff=False)
    return {
        "anonymous": None,
        "nobody": User.objects.get(pk=nobody.pk),
        "staff": make_user("stan"),
        "auditor": make_user("aud", "Auditors"),
        "marketer": User.objects.get(username="mia"),
        "approver": make_user("arno", "Approvers"),
        "admin": User.objects.get(pk=boss.pk),
    }


def test_every_url_answers_each_role_as_the_table_says(
    world: dict[str, Any], users: dict[str, Any]
) -> None:
    table = expectations()
    wrong = []
    for role, user in users.items():
        client = Client()
        if user is not None:
            client.force_login(user)
        addresses = [(concrete(p, world), table[p]) for p in url_patterns()]
        addresses += [(url, expected) for url, (_, expected) in QUERY_URLS.items()]
        for url, expected in addresses:
            got = outcome(client.get(url))
            if got != expected[role]:
                wrong.append(f"{role:9} {url}: expected {expected[role]}, got {got}")
    assert not wrong, "\n".join(wrong)


def test_the_admin_imports_and_exports_need_the_models_permissions(
    world: dict[str, Any], make_user: Callable[..., User], client: Client
) -> None:
    """import-export lets any staff user in unless told which permission each needs."""
    nobody = make_user("newcomer")  # staff, in no role yet
    approver = make_user("arno", "Approvers")
    client.force_login(nobody)
    export = {"format": "0", "resource": "0", "contactresource_phone": "on"}
    assert client.post("/admin/contacts/contact/export/", export).status_code == 403
    assert client.get("/admin/contacts/optout/export/").status_code == 403
    client.force_login(approver)  # may look at opt-outs, not add them
    assert client.get("/admin/contacts/optout/import/").status_code == 403
    upload = ContentFile(b"phone,channel\n+447911200099,sms\n", name="stop.csv")
    client.post("/admin/contacts/optout/import/", {"import_file": upload, "format": "0"})
    assert not OptOut.objects.filter(phone="+447911200099").exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).exists()


def test_every_admin_action_is_offered_only_to_the_roles_in_the_table(
    world: dict[str, Any], users: dict[str, Any]
) -> None:
    admin.autodiscover()
    assert {admin_model_key(m) for m in admin.site._registry} == set(ADMIN_ACTIONS)
    wrong = []
    for model, model_admin in admin.site._registry.items():
        key = admin_model_key(model)
        for role in STAFF_ROLES:
            request = RequestFactory().get(f"/admin/{key}/")
            request.user = users[role]
            offered = set(model_admin.get_actions(request))
            if offered != ADMIN_ACTIONS[key][role]:
                wrong.append(f"{role} on {key}: offered {sorted(offered)}")
    assert not wrong, "\n".join(wrong)


def run_action(client: Client, key: str, action: str, *pks: Any, **extra: Any) -> int:
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}
    return client.post(f"/admin/{key}/", data).status_code


def test_admin_actions_outside_the_table_do_nothing(
    world: dict[str, Any], users: dict[str, Any]
) -> None:
    objects, campaign = world["objects"], world["campaign"]
    approver, marketer = Client(), Client()
    approver.force_login(users["approver"])
    marketer.force_login(users["marketer"])
    contact = objects["contacts/contact"]

    run_action(approver, "contacts/contact", "delete_selected", contact.pk, post="yes")
    run_action(approver, "contacts/contact", "erase_contacts", contact.pk, confirm="yes")
    assert Contact.objects.filter(pk=contact.pk, phone=contact.phone).exists()
    run_action(marketer, "campaigns/campaign", "approve_selected", campaign.pk)
    run_action(marketer, "campaigns/campaign", "delete_selected", campaign.pk, post="yes")
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.PENDING_APPROVAL
    task = objects["django_q/failure"]
    assert run_action(marketer, "django_q/failure", "resubmit_task", task.pk) == 403
    attempt = objects["axes/accessattempt"]
    status = run_action(approver, "axes/accessattempt", "delete_selected", attempt.pk, post="yes")
    assert status == 403 and AccessAttempt.objects.filter(pk=attempt.pk).exists()
    event = objects["audit/auditevent"]
    admin_client = Client()
    admin_client.force_login(users["admin"])
    run_action(admin_client, "audit/auditevent", "delete_selected", event.pk, post="yes")
    assert AuditEvent.objects.filter(pk=event.pk).exists()  # not even a superuser
    # The same requests from a role that may: they work, so the refusals above are real.
    run_action(admin_client, "campaigns/campaign", "approve_selected", campaign.pk)
    assert Campaign.objects.get(pk=campaign.pk).status != Campaign.Status.PENDING_APPROVAL
    run_action(marketer, "contacts/contact", "delete_selected", contact.pk, post="yes")
    assert not Contact.objects.filter(pk=contact.pk).exists()


def test_state_changing_posts_are_refused_to_roles_without_the_right(
    world: dict[str, Any], users: dict[str, Any]
) -> None:
    campaign, job = world["campaign"], world["job"]
    clients = {}
    for role, user in users.items():
        clients[role] = Client()
        if user is not None:
            clients[role].force_login(user)
    pending = Campaign.Status.PENDING_APPROVAL
    confirm = {"confirm": "yes", "note": "no"}
    seen = {"content_hash": campaign.content_hash}  # what the approvals page sends along

    def still_pending() -> bool:
        return Campaign.objects.get(pk=campaign.pk).status == pending

    for role in ("anonymous", "marketer"):  # marketers submitted it: they may not approve
        clients[role].post(f"/approvals/{campaign.pk}/approve/", seen)
        clients[role].post(f"/admin/campaigns/pendingapproval/{campaign.pk}/approve/", seen)
        clients[role].post(f"/admin/campaigns/campaign/{campaign.pk}/transition/approve/")
        assert still_pending(), role
    for role in ("anonymous", "approver"):  # approvers may not cancel
        clients[role].post(f"/campaigns/{campaign.pk}/action/cancel/", confirm)
        clients[role].post(f"/admin/campaigns/campaign/{campaign.pk}/transition/cancel/", confirm)
        assert still_pending(), role
    for role in ("anonymous", "approver"):
        before = Campaign.objects.count()
        response = clients[role].post("/campaigns/new/", {"name": "Sneaky", "body": "Hi"})
        assert outcome(response) in (LOGIN, FORBIDDEN) and Campaign.objects.count() == before
        response = clients[role].post(f"/campaigns/{campaign.pk}/in-doubt/mark_sent/")
        assert outcome(response) in (LOGIN, FORBIDDEN)
        response = clients[role].post(f"/admin/contacts/importjob/{job.pk}/rollback/")
        assert outcome(response) in (ADMIN_LOGIN, FORBIDDEN)
        assert ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.COMPLETED
    response = clients["anonymous"].post("/admin/auth/user/add/", {"username": "intruder"})
    assert outcome(response) == ADMIN_LOGIN and not User.objects.filter(username="intruder")
    clients["approver"].post(f"/approvals/{campaign.pk}/approve/", seen)
    assert not still_pending()  # an approver may: the refusals above are not a broken request


def test_signed_in_users_without_a_role_are_refused_every_dashboard_post(
    world: dict[str, Any], users: dict[str, Any]
) -> None:
    """Whatever the form says: nothing is created, sent, approved or moved."""
    campaign = world["campaign"]
    form = {
        "name": "Sneaky",
        "body": "Hi",
        "confirm": "yes",
        "reason": "no",
        "content_hash": campaign.content_hash,
        "phone": "+447911200098",
    }
    written = AuditEvent.objects.exclude(action=AuditEvent.Action.LOGIN)  # force_login's
    before = (Campaign.objects.count(), Message.objects.count(), written.count())
    wrong = []
    for role in ("nobody", "staff", "auditor"):
        client = Client()
        client.force_login(users[role])
        for pattern in url_patterns(dashboard_urls.urlpatterns):
            if not pattern:
                continue  # home: the same page for a POST
            url = concrete(pattern, world).replace("<str:decision>", "mark_sent")
            got = outcome(client.post(url, form))
            if got not in (FORBIDDEN, NOT_ALLOWED):  # 405: a page only ever read
                wrong.append(f"{role:9} POST {url}: expected {FORBIDDEN}, got {got}")
    assert not wrong, "\n".join(wrong)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.PENDING_APPROVAL
    # Nothing was written: no campaign, message, transition, test send or export.
    assert (Campaign.objects.count(), Message.objects.count(), written.count()) == before
