"""Dashboard pages: the inbox (conversations by number), a conversation, and what staff do
with it: answer, mark handled, confirm a possible opt-out.

Reading needs what the inbox shows (dashboard.access.VIEW_INBOX); acting needs
messaging.reply_inbound as well. A conversation's address is one of its replies' ids,
never the number: numbers stay out of addresses and server logs. Each action is a POST
that redirects back, and is safe to send twice.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from contacts.models import Channel
from dashboard import inbox
from dashboard.access import can_answer_replies, can_see_inbox
from dashboard.inbox_forms import ReplyForm
from messaging.inbound import confirm_opt_out
from messaging.models import InboundMessage

logger = logging.getLogger(__name__)


def _viewer(request: HttpRequest) -> None:
    if not can_see_inbox(request.user):
        raise PermissionDenied


def _answerer(request: HttpRequest) -> None:
    if not can_answer_replies(request.user):
        raise PermissionDenied


def _link(params: dict[str, str], **more: Any) -> str:
    merged = {**params, **{k: str(v) for k, v in more.items() if v not in (None, "")}}
    return "?" + urlencode(merged) if merged else "?"


@login_required
@require_GET
def inbox_page(request: HttpRequest) -> HttpResponse:
    _viewer(request)
    filters = inbox.InboxFilters.from_query(request.GET)
    older = request.GET.get("older", "")
    page = inbox.conversation_page(filters, int(older) if older.isdigit() else None)
    params = filters.params
    toggles = [
        ("opt_outs", "Opt-outs only", filters.opt_outs),
        ("possible", "Possible opt-outs", filters.possible),
        ("unhandled", "Unhandled only", filters.unhandled),
    ]
    context = {
        "title": "Inbox",
        "nav": "inbox",
        "page": page,
        "filters": filters,
        "toggles": toggles,
        "campaigns": inbox.campaigns_with_replies(),
        "query": _link(params),
        "older_link": _link(params, older=page.older) if page.older else "",
        "newest_link": _link(params) if not page.first else "",
    }
    return render(request, "dashboard/inbox.html", context)


def _reply_form(answering: InboundMessage, data: Any = None) -> ReplyForm:
    whatsapp = answering.channel == Channel.WHATSAPP
    window_open = inbox.whatsapp_window_open(answering) if whatsapp else True
    initial = {"form_token": secrets.token_urlsafe(16)}
    return ReplyForm(
        data,
        initial=initial,
        channel=answering.channel,
        window_open=window_open,
        templates=inbox.whatsapp_templates(),
    )


def _conversation(
    request: HttpRequest,
    reply: InboundMessage,
    form: ReplyForm | None = None,
    answering: InboundMessage | None = None,
    status: int = 200,
) -> HttpResponse:
    thread = inbox.thread_of(reply)
    inbox.mark_read(thread.phone)
    may_act = can_answer_replies(request.user)
    latest_on = thread.latest_on()
    answering = answering or _answering(request, thread)
    if form is None and may_act and thread.answerable:
        form = _reply_form(answering)
    context = {
        "title": f"Conversation with {thread.name}",
        "nav": "inbox",
        "thread": thread,
        "reply": reply,
        "may_act": may_act,
        "form": form,
        "answering": answering,
        "channels": sorted(latest_on.values(), key=lambda r: r.channel),
        "templates_exist": inbox.whatsapp_templates().exists(),
        "most": inbox.THREAD_MOST,
    }
    return render(request, "dashboard/inbox_conversation.html", context, status=status)


def _answering(request: HttpRequest, thread: inbox.Thread) -> InboundMessage:
    """The reply an answer goes to: the latest on the channel asked for (`?on=`), else the
    latest of all. Its channel and account are the answer's."""
    latest_on = thread.latest_on()
    return latest_on.get(request.GET.get("on", ""), thread.latest)


@login_required
@require_GET
def conversation_page(request: HttpRequest, pk: int) -> HttpResponse:
    _viewer(request)
    reply = get_object_or_404(InboundMessage, pk=pk)
    return _conversation(request, reply)


def _thread_reply(pk: int) -> InboundMessage:
    return get_object_or_404(InboundMessage.objects.select_related("provider_account"), pk=pk)


@login_required
@require_POST
def conversation_reply(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue an answer to the reply posted as `answering` (one of this thread's)."""
    _answerer(request)
    reply = _thread_reply(pk)
    answering_id = request.POST.get("answering", "")
    answering = (
        InboundMessage.objects.filter(
            pk=int(answering_id) if answering_id.isdigit() else 0, phone=reply.phone
        )
        .select_related("provider_account")
        .first()
    )
    if answering is None:
        messages.error(request, "That reply is not part of this conversation.")
        return redirect("dashboard:inbox_conversation", pk)
    thread = inbox.thread_of(reply)
    if not thread.answerable:
        messages.error(request, "This sender is not a phone number: it cannot be answered.")
        return redirect("dashboard:inbox_conversation", pk)
    form = _reply_form(answering, data=request.POST)
    if not form.is_valid():
        return _conversation(request, reply, form, answering, status=400)
    data = form.cleaned_data
    try:
        message = inbox.answer(
            answering,
            data["body"],
            data.get("template"),
            data["form_token"],
            thread.contact,
            by=request.user,
        )
    except inbox.AlreadySent as already:
        messages.info(request, "This answer was already sent from this page: no second one went.")
        logger.info("inbox answer %s posted again: not sent twice", already.message.pk)
        return redirect("dashboard:inbox_conversation", pk)
    logger.info("reply %s answered by %s: message %s", answering.pk, request.user.pk, message.pk)
    channel = Channel(answering.channel).label
    messages.success(request, f"Answer queued by {channel}: it goes out in a moment.")
    return redirect("dashboard:inbox_conversation", pk)


@login_required
@require_POST
def conversation_handled(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark handled the thread's replies up to the latest the page showed (`through`)."""
    _answerer(request)
    reply = _thread_reply(pk)
    through = request.POST.get("through", "")
    if not through.isdigit():
        messages.error(request, "Open the conversation again, then mark it handled.")
        return redirect("dashboard:inbox_conversation", pk)
    handled = inbox.mark_handled(reply.phone, int(through), request.user)
    if handled:
        messages.success(request, f"{handled} repl{'y' if handled == 1 else 'ies'} marked handled.")
    else:
        messages.info(request, "Nothing to mark: this conversation was handled already.")
    back = request.POST.get("back", "")
    if back == "inbox":
        return redirect(reverse("dashboard:inbox"))
    return redirect("dashboard:inbox_conversation", pk)


@login_required
@require_POST
def conversation_confirm_opt_out(request: HttpRequest, pk: int) -> HttpResponse:
    """A person agrees that this possible opt-out asks to stop: the number is opted out of
    the reply's channel (messaging.inbound.confirm_opt_out: source "reply", audited)."""
    _answerer(request)
    reply = _thread_reply(pk)
    channel = Channel(reply.channel).label
    if not reply.possible_opt_out:
        done = reply.action == InboundMessage.Action.OPT_OUT
        messages.info(
            request,
            "Already confirmed: this number is opted out."
            if done
            else "This reply is not flagged as a possible opt-out.",
        )
        return redirect("dashboard:inbox_conversation", pk)
    made = confirm_opt_out(reply, by=request.user)
    reply.refresh_from_db()
    if made:
        messages.success(request, f"Opted out of {channel}: this number gets no more {channel}.")
    elif reply.action == InboundMessage.Action.OPT_OUT:
        messages.info(request, f"The number was opted out of {channel} already; reply noted.")
    else:
        messages.error(request, "This sender is not a phone number: there is nothing to opt out.")
    return redirect("dashboard:inbox_conversation", pk)


urlpatterns = [
    path("inbox/", inbox_page, name="inbox"),
    path("inbox/<int:pk>/", conversation_page, name="inbox_conversation"),
    path("inbox/<int:pk>/reply/", conversation_reply, name="inbox_reply"),
    path("inbox/<int:pk>/handled/", conversation_handled, name="inbox_handled"),
    path(
        "inbox/<int:pk>/confirm-opt-out/",
        conversation_confirm_opt_out,
        name="inbox_confirm_opt_out",
    ),
]
