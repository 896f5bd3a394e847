"""Who may do what on the dashboard: the same permissions the admin and the models use.

Each area of pages needs the view permission of the data it shows; a page the user may
not see answers 403, and a panel of a page that is theirs otherwise is left out. Views
check these on the server; templates use them only to hide what would be refused.
"""

from typing import Any

from api.models import may_manage_webhooks
from api.tokens import useful_scopes

VIEW_CAMPAIGNS = "campaigns.view_campaign"
CHANGE_CAMPAIGNS = "campaigns.change_campaign"
ADD_CAMPAIGNS = "campaigns.add_campaign"
APPROVE = "campaigns.approve_campaign"
VIEW_CONTACTS = "contacts.view_contact"
VIEW_IMPORTS = "contacts.view_importjob"
VIEW_SEGMENTS = "campaigns.view_segment"
#: Provider accounts' names, backends and whether their credentials are set.
VIEW_ACCOUNTS = "messaging.view_provideraccount"
#: The reports name campaigns and the provider accounts they went through.
VIEW_REPORTS = (VIEW_CAMPAIGNS, VIEW_ACCOUNTS)
#: A campaign's per-recipient results: every recipient's number, status and provider id.
VIEW_RESULTS = (VIEW_CAMPAIGNS, "messaging.view_message")
#: The inbox: replies, with the contacts' numbers and what we sent them.
VIEW_INBOX = ("messaging.view_inboundmessage", VIEW_CONTACTS, "messaging.view_message")
#: Answering a reply, confirming a possible opt-out, marking a conversation handled.
REPLY_INBOUND = "messaging.reply_inbound"


def can_build(user: Any) -> bool:
    """Marketers (and admins): write, test and submit campaigns."""
    return bool(user.has_perm(ADD_CAMPAIGNS) and user.has_perm(CHANGE_CAMPAIGNS))


def can_approve(user: Any) -> bool:
    """The queue shows the campaigns it asks about: approving needs seeing them too."""
    return bool(user.has_perms((APPROVE, VIEW_CAMPAIGNS)))


def can_see_campaigns(user: Any) -> bool:
    return bool(user.has_perm(VIEW_CAMPAIGNS))


def can_see_contacts(user: Any) -> bool:
    return bool(user.has_perm(VIEW_CONTACTS))


def can_see_segments(user: Any) -> bool:
    return bool(user.has_perm(VIEW_SEGMENTS))


def can_see_imports(user: Any) -> bool:
    return bool(user.has_perm(VIEW_IMPORTS))


def can_see_accounts(user: Any) -> bool:
    return bool(user.has_perm(VIEW_ACCOUNTS))


def can_export_results(user: Any) -> bool:
    return bool(user.has_perms(VIEW_RESULTS))


def can_see_reports(user: Any) -> bool:
    """Delivery and cost per campaign and per provider account, on the page and as CSV."""
    return bool(user.has_perms(VIEW_REPORTS))


def can_see_inbox(user: Any) -> bool:
    return bool(user.has_perms(VIEW_INBOX))


def can_answer_replies(user: Any) -> bool:
    return bool(can_see_inbox(user) and user.has_perm(REPLY_INBOUND))


def can_use_api_tokens(user: Any) -> bool:
    """Whoever's permissions give some API scope a use keeps their own tokens."""
    return bool(useful_scopes(user))


def can_manage_webhooks(user: Any) -> bool:
    """Outgoing webhooks ship phone numbers and replies out: superusers, unless granted."""
    return may_manage_webhooks(user)


def roles(user: Any) -> dict[str, bool]:
    """For templates: which parts of the menu this user may use."""
    return {
        "build": can_build(user),
        "approve": can_approve(user),
        "campaigns": can_see_campaigns(user),
        "contacts": can_see_contacts(user),
        "segments": can_see_segments(user),
        "accounts": can_see_accounts(user),
        "reports": can_see_reports(user),
        "inbox": can_see_inbox(user),
        "tokens": can_use_api_tokens(user),
        "webhooks": can_manage_webhooks(user),
        "admin": bool(user.is_staff),
    }


def has_a_dashboard_area(user: Any) -> bool:
    """Whether any part of the dashboard's menu is the user's (the admin's link aside)."""
    return any(allowed for area, allowed in roles(user).items() if area != "admin")
