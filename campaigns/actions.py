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
    #: False: whoever submitted the campaign is not offered this action on it.
    for_submitter: bool = True

    @property
    def moves(self) -> dict[str, str]:
        """The state machine's moves for this action: each from-status to the to-status."""
        return dict.fromkeys(self.from_statuses, self.to_status)

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
            for_submitter=False,
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


def available_to(user: Any, campaign: Campaign) -> list[Action]:
    """The actions `user` may take on `campaign` as it is now, in the table's order."""
    submitter = campaign.submitted_by_id == user.pk
    return [
        a
        for a in ACTIONS.values()
        if campaign.status in a.from_statuses
        and may_take(user, a)
        and (a.for_submitter or not submitter)
    ]


def check_reason(chosen: Action, reason: str) -> None:
    """Refuse an empty reason where `chosen` requires one."""
    if chosen.reason_required and not reason.strip():
        raise ValidationError(chosen.reason_missing, code="reason_required")
