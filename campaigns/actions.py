"""The staff actions on a campaign: the one table the dashboard, admin, CLI and model read.

For each action: its button label, the statuses it moves from and the one it moves to,
the permission it needs, whether it takes a reason, and what is asked before it is done.
`Campaign.act` and the state machine's methods take their moves from here, so a button
can never offer what the model would refuse for its state. The engine's own transitions
(start, complete, an edit's return to draft) are not staff actions and stay in the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from campaigns.models import Campaign

CHANGE = "campaigns.change_campaign"  # marketers
APPROVE = "campaigns.approve_campaign"  # approvers

#: What each permission's absence is refused with.
REFUSALS = {
    CHANGE: "Only marketers may change campaigns.",
    APPROVE: "Only approvers may approve or reject campaigns.",
}


class Reason(StrEnum):
    NONE = "none"  # the action takes no note
    OPTIONAL = "optional"  # a note for the log, which may be left empty
    REQUIRED = "required"  # refused without one


@dataclass(frozen=True)
class Action:
    """One staff action: what it moves, who may take it, and what it asks for first."""

    name: str
    label: str
    from_statuses: tuple[str, ...]
    to_status: str
    permission: str
    reason: Reason = Reason.NONE
    reason_label: str = ""
    #: What an empty reason is refused with, when one is required.
    reason_missing: str = ""
    #: Ticked before a destructive action is taken; empty: taken without asking.
    confirmation: str = ""
    #: The help of the CLI's --reason.
    reason_help: str = ""
    #: Set: whoever submitted the campaign may not take this action on it, told this.
    submitter_refusal: str = ""
    #: Set: whoever changed the campaign's content since it was last approved (its
    #: `authors`) may not take this action on it, told this.
    author_refusal: str = ""

    @property
    def moves(self) -> dict[str, str]:
        """The state machine's moves for this action: each from-status to the to-status."""
        return dict.fromkeys(self.from_statuses, self.to_status)

    @property
    def for_submitter(self) -> bool:
        return not self.submitter_refusal

    @property
    def for_authors(self) -> bool:
        return not self.author_refusal

    @property
    def takes_reason(self) -> bool:
        return self.reason != Reason.NONE

    @property
    def reason_required(self) -> bool:
        return self.reason == Reason.REQUIRED

    @property
    def field_label(self) -> str:
        """The reason field's label, saying whether it may be left empty."""
        if not self.takes_reason:
            return ""
        return f"{self.reason_label} ({'required' if self.reason_required else 'optional'})"

    @property
    def refusal(self) -> str:
        return REFUSALS[self.permission]


# Statuses by the values Campaign.Status stores: campaigns.models reads this table, so it
# cannot import that model (tests/campaigns/test_actions.py checks every value is one).
DRAFT, PENDING_APPROVAL, SCHEDULED = "draft", "pending_approval", "scheduled"
SENDING, PAUSED, CANCELLED = "sending", "paused", "cancelled"

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("submit", "Submit for approval", (DRAFT,), PENDING_APPROVAL, CHANGE),
        Action(
            "approve",
            "Approve",
            (PENDING_APPROVAL,),
            SCHEDULED,
            APPROVE,
            reason=Reason.OPTIONAL,
            reason_label="Note for approving",
            reason_help="a note for the log",
            submitter_refusal="You cannot approve a campaign you submitted yourself.",
            author_refusal="You cannot approve a campaign you changed since it was last "
            "approved (you edited it, or its template): another approver must.",
        ),
        Action(
            "reject",
            "Reject",
            (PENDING_APPROVAL,),
            DRAFT,
            APPROVE,
            reason=Reason.REQUIRED,
            reason_label="Reason for rejecting",
            reason_missing="Say why the campaign is rejected, so the submitter can fix it.",
            confirmation="I understand: rejecting sends the campaign back to draft; "
            "it must be submitted and approved again.",
            reason_help="why it is rejected (required), shown to the submitter",
        ),
        Action(
            "pause",
            "Pause",
            (SENDING,),
            PAUSED,
            CHANGE,
            reason=Reason.OPTIONAL,
            reason_label="Reason for pausing",
            reason_help="why it is paused, shown to staff",
        ),
        Action("resume", "Resume", (PAUSED,), SENDING, CHANGE),
        Action(
            "cancel",
            "Cancel campaign",
            (DRAFT, PENDING_APPROVAL, SCHEDULED, SENDING, PAUSED),
            CANCELLED,
            CHANGE,
            reason=Reason.OPTIONAL,
            reason_label="Reason for cancelling",
            confirmation="I understand: cancelling stops the campaign for good; "
            "this cannot be undone.",
            reason_help="why it is cancelled, for the log",
        ),
    )
}


def action(name: str) -> Action:
    """The staff action called `name`; ValueError for any other name."""
    try:
        return ACTIONS[name]
    except KeyError:
        raise ValueError(f"unknown campaign action {name!r}") from None


def may_take(user: Any, chosen: Action) -> bool:
    """Whether `user`'s permissions allow `chosen` at all (whatever the campaign's state)."""
    return user is not None and bool(user.has_perm(chosen.permission))


def withheld_reason(user: Any, campaign: Campaign, chosen: Action) -> str:
    """Why `user` may not take `chosen` on `campaign` whatever their permissions (four eyes:
    they submitted it, or changed its content since it was last approved); '' if they may."""
    if not chosen.for_submitter and campaign.submitted_by_id == user.pk:
        return chosen.submitter_refusal
    # .all(): a list page prefetches the authors of every row at once.
    if not chosen.for_authors and any(a.pk == user.pk for a in campaign.authors.all()):
        return chosen.author_refusal
    return ""


def _in_reach(user: Any, campaign: Campaign) -> list[Action]:
    """The actions `user`'s permissions allow on `campaign`'s state, in the table's order."""
    return [a for a in ACTIONS.values() if campaign.status in a.from_statuses and may_take(user, a)]


def available_to(user: Any, campaign: Campaign) -> list[Action]:
    """The actions `user` may take on `campaign` as it is now, in the table's order."""
    return [a for a in _in_reach(user, campaign) if not withheld_reason(user, campaign, a)]


def withheld_from(user: Any, campaign: Campaign) -> list[tuple[Action, str]]:
    """The actions `user` could take on `campaign` now but for four eyes, each with why:
    shown where their buttons would be."""
    reasons = ((a, withheld_reason(user, campaign, a)) for a in _in_reach(user, campaign))
    return [(a, reason) for a, reason in reasons if reason]


def check_reason(chosen: Action, reason: str) -> None:
    """Refuse an empty reason where `chosen` requires one."""
    if chosen.reason_required and not reason.strip():
        raise ValidationError(chosen.reason_missing, code="reason_required")


# The other things staff do with a campaign, from its page and the CLI: none is a move in
# the state machine above (an edit after submit returns it to draft, which the model does
# itself, and which the builder asks about before saving).

ADD = "campaigns.add_campaign"  # marketers
COMPLETED = "completed"


@dataclass(frozen=True)
class Operation:
    """One staff operation on a campaign that is not a status move: who may, in which states,
    and what is asked first in which of them."""

    name: str
    label: str
    statuses: tuple[str, ...]
    permissions: tuple[str, ...]
    #: What a campaign in another status is refused with.
    state_refusal: str
    #: Statuses in which `confirmation` is said (and, for a delete, ticked) before it is done.
    confirm_in: tuple[str, ...] = ()
    confirmation: str = ""

    def asks_first(self, status: str) -> bool:
        return status in self.confirm_in


#: Every status a campaign can have (duplicating works from any of them).
ALL_STATUSES = (DRAFT, PENDING_APPROVAL, SCHEDULED, SENDING, PAUSED, COMPLETED, CANCELLED)
BUILD = (ADD, CHANGE)

OPERATIONS: dict[str, Operation] = {
    o.name: o
    for o in (
        Operation(
            "edit",
            "Edit",
            (DRAFT, PENDING_APPROVAL),
            (CHANGE,),
            "Only drafts and campaigns awaiting approval can be edited; duplicate it instead.",
            confirm_in=(PENDING_APPROVAL,),
            confirmation="Saving an edit takes it out of the approval queue, back to draft: "
            "it must be submitted and approved again.",
        ),
        Operation(
            "duplicate",
            "Duplicate",
            ALL_STATUSES,
            BUILD,
            "",
        ),
        Operation(
            "delete",
            "Delete draft",
            (DRAFT,),
            (CHANGE,),
            "Only drafts can be deleted; cancel it instead.",
            confirm_in=(DRAFT,),
            confirmation="I understand: deleting the draft removes it and its history for good.",
        ),
        Operation(
            "test",
            "Send a test",
            (DRAFT,),
            BUILD,
            "Tests are sent from drafts.",
        ),
    )
}


def operation(name: str) -> Operation:
    """The operation called `name`; ValueError for any other name."""
    try:
        return OPERATIONS[name]
    except KeyError:
        raise ValueError(f"unknown campaign operation {name!r}") from None


def operation_refusal(user: Any, campaign: Campaign, chosen: Operation) -> str:
    """Why `user` may not take `chosen` on `campaign` as it is now; '' if they may."""
    if user is None or not user.has_perms(chosen.permissions):
        return REFUSALS[CHANGE]
    if campaign.status not in chosen.statuses:
        return chosen.state_refusal
    return ""


def operations_for(user: Any, campaign: Campaign) -> list[Operation]:
    """The operations `user` may take on `campaign` as it is now, in the table's order."""
    return [o for o in OPERATIONS.values() if not operation_refusal(user, campaign, o)]
