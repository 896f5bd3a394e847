"""Who may do what on the dashboard: the same permissions the admin and the models use.

Views check these on the server; templates use them only to hide what would be refused.
"""

from typing import Any

CHANGE_CAMPAIGNS = "campaigns.change_campaign"
ADD_CAMPAIGNS = "campaigns.add_campaign"
APPROVE = "campaigns.approve_campaign"
VIEW_CONTACTS = "contacts.view_contact"


def can_build(user: Any) -> bool:
    """Marketers (and admins): write, test and submit campaigns."""
    return bool(user.has_perm(ADD_CAMPAIGNS) and user.has_perm(CHANGE_CAMPAIGNS))


def can_approve(user: Any) -> bool:
    return bool(user.has_perm(APPROVE))


def can_see_contacts(user: Any) -> bool:
    return bool(user.has_perm(VIEW_CONTACTS))


def roles(user: Any) -> dict[str, bool]:
    """For templates: which parts of the menu this user may use."""
    return {
        "build": can_build(user),
        "approve": can_approve(user),
        "contacts": can_see_contacts(user),
        "admin": bool(user.is_staff),
    }
