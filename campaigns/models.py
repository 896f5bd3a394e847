"""Templates, campaigns and their state machine.

Every change of a campaign's status goes through one of the methods below, each
a conditional UPDATE (`filter(pk=, status=old).update(status=new)`), so two
clicks, two approvers or two workers can never both win a transition.
"""

from __future__ import annotations

import hashlib
import json
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils import timezone

from audit.models import AuditEvent
from campaigns import events
from campaigns.actions import (
    ACTIONS,
    REFUSALS,
    check_reason,
    may_take,
    operation,
    withheld_reason,
)
from campaigns.actions import action as staff_action
from campaigns.frequency import Cap, house_cap, may_override
from campaigns.segments import Segment
from contacts.models import (
    ERASED_REFUSAL,
    Channel,
    Contact,
    ErasedNumber,
    Group,
    PhoneNumberField,
    Tag,
)
from contacts.phones import redact
from messaging import counts
from messaging.models import Message, ProviderAccount
from messaging.rendering import placeholders


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a time zone name, e.g. Europe/London.")


#: What an approval records of the figures it was shown.
APPROVED_FIGURES = ("audience", "queued", "skipped", "segments", "cost", "currency")


class TransitionNotAllowed(Exception):
    """The campaign is not in a state this action applies to (or someone else got there first)."""


class ChangedSinceShown(TransitionNotAllowed):
    """An approver decided on a page showing content that has been changed since."""


def unknown_variables(body: str) -> list[str]:
    """Placeholders in `body` that are neither a contact field nor any contact's attribute."""
    return [
        name
        for name in placeholders(body)
        if name not in Contact.TEMPLATE_FIELDS
        and not Contact.objects.filter(attributes__has_key=name).exists()
    ]


def check_variables(body: str, field: str = "body") -> None:
    unknown = unknown_variables(body)
    if unknown:
        known = ", ".join(Contact.TEMPLATE_FIELDS)
        raise ValidationError(
            {
                field: f"No contact has {', '.join('{{' + n + '}}' for n in unknown)}: use "
                f"one of {known} or a column your contact imports carried."
            }
        )


class MessageTemplate(models.Model):
    name = models.CharField(max_length=100, unique=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    body = models.TextField(help_text="Use {{first_name}} or {{first_name|friend}} for a default.")
    whatsapp_template_id = models.CharField(
        max_length=100, blank=True, help_text="The provider's approved template id (WhatsApp only)."
    )
    whatsapp_parameters = models.JSONField(
        default=list, blank=True, help_text="Contact fields for the template's ordered parameters."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        check_variables(self.body)

    def save_edit(self, by: Any) -> None:
        """Save, counting `by` among the authors of each unfinished campaign whose content
        (what its approval binds) the edit changes."""
        using = Campaign.objects.filter(template=self).exclude(status__in=Campaign.FINAL_STATUSES)
        before = {c.pk: c.compute_content_hash() for c in using.select_related("provider_account")}
        self.save()
        for campaign in Campaign.objects.filter(pk__in=before).select_related("template"):
            campaign.note_authors(by, before[campaign.pk])


class CampaignQuerySet(models.QuerySet["Campaign"]):
    def due(self) -> CampaignQuerySet:
        """Approved campaigns whose start time has come (or that had none)."""
        now = timezone.now()
        return self.filter(status=Campaign.Status.SCHEDULED).filter(
            models.Q(scheduled_at__isnull=True) | models.Q(scheduled_at__lte=now)
        )

    def status_counts(self) -> dict[str, int]:
        """Campaigns per status, every status present, and "rejected" (drafts sent back
        with a reason): one grouped query."""
        counts = dict.fromkeys(Campaign.Status.values, 0)
        counts["rejected"] = 0
        rejected = models.Count("pk", filter=~models.Q(rejection_reason=""))
        rows = self.order_by().values("status").annotate(n=models.Count("pk"), rejected=rejected)
        for row in rows:
            counts[row["status"]] = row["n"]
            if row["status"] == Campaign.Status.DRAFT:
                counts["rejected"] = row["rejected"]
        return counts


def message_counts(campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Messages per status for each of the campaigns, every status present: their kept
    counts (messaging.counts), a few rows each however many messages they have."""
    return counts.status_counts(campaign_ids)


#: What a duplicate copies besides the audience: the content and how it is sent.
COPIED_FIELDS = (
    "channel",
    "provider_account_id",
    "sender",
    "template_id",
    "body",
    "track_links",
    "link_utm",
    "variant_bodies",
    "ab_mode",
    "ab_split",
    "ab_test_share",
    "ab_test_hours",
    "ab_winner_by",
    "time_zone",
    "window_start",
    "window_end",
    "brake_failure_rate",
    "brake_window",
    "frequency_cap",
    "cap_messages",
    "cap_days",
)
#: The campaign's audience: targeted, then excluded (copied by duplicate, bound by approval).
AUDIENCE_FIELDS = (
    "groups",
    "tags",
    "segments",
    "exclude_groups",
    "exclude_tags",
    "exclude_segments",
)
#: The audience fields from before segments, bound by every approval's content hash; the
#: others are bound only where used, so a campaign approved before them keeps its hash.
FIRST_AUDIENCE_FIELDS = ("groups", "tags", "exclude_groups")
COPY_SUFFIX = " (copy)"
NAME_LENGTH = 200


class FrequencyCap(models.TextChoices):
    HOUSE = "house", "The house setting"  # HERALD_FREQUENCY_CAP_MESSAGES / _DAYS
    OWN = "own", "Its own cap"  # cap_messages per cap_days
    OFF = "off", "No cap"


class ABMode(models.TextChoices):
    SPLIT = "split", "Split: each variant to its share"
    TEST = "test", "Test: a test share first, then the winner to the rest"


class WinnerBy(models.TextChoices):
    CLICKS = "clicks", "Click-through rate"
    DELIVERY = "delivery", "Delivery rate"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"  # being written; the only state in which it may be edited freely
        PENDING_APPROVAL = "pending_approval", "Pending approval"  # frozen, waiting for an approver
        SCHEDULED = "scheduled", "Scheduled"  # approved; starts at scheduled_at (or at once)
        SENDING = "sending", "Sending"  # messages are being materialised and dispatched
        PAUSED = "paused", "Paused"  # stopped by staff or by the engine (see pause_reason)
        COMPLETED = "completed", "Completed"  # nothing left pending, sending or in doubt (final)
        CANCELLED = "cancelled", "Cancelled"  # stopped for good; unsent messages cancelled (final)

    EDITABLE_STATUSES = (Status.DRAFT, Status.PENDING_APPROVAL, Status.SCHEDULED)
    FINAL_STATUSES = (Status.COMPLETED, Status.CANCELLED)

    name = models.CharField(max_length=NAME_LENGTH)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    provider_account = models.ForeignKey(ProviderAccount, on_delete=models.PROTECT)
    sender = models.CharField(
        max_length=20, blank=True, help_text="Leave empty for the provider account's sender."
    )
    template = models.ForeignKey(MessageTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    body = models.TextField(blank=True, help_text="Leave empty to use the template's body.")
    track_links = models.BooleanField(
        "Shorten and count links",
        default=True,
        help_text="Each link in the text becomes a short link of its own per recipient, "
        "so clicks are counted (needs HERALD_LINK_BASE).",
    )
    link_utm = models.BooleanField(
        "Add UTM parameters",
        default=True,
        help_text="Short links lead to the address with utm_source (the channel) and "
        "utm_campaign (the campaign's name) added, unless it has its own.",
    )
    variant_bodies = models.JSONField(
        "Other variants",
        default=list,
        blank=True,
        help_text="A/B test: the texts of variants B, C and D (the body above is A); "
        "none for one text to everyone.",
    )
    ab_mode = models.CharField(
        "A/B mode",
        max_length=8,
        choices=ABMode.choices,
        default=ABMode.SPLIT,
        help_text="Split: each variant to its share of the audience. Test: the variants "
        "to a test share first, then the winner to the rest.",
    )
    ab_split = models.JSONField(
        "Split (%)",
        default=list,
        blank=True,
        help_text="Split: each variant's share in percent, A first (e.g. 50,50); empty: "
        "equal shares.",
    )
    ab_test_share = models.PositiveSmallIntegerField(
        "Test share (%)",
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(99)],
        help_text="Test: the share of the audience the variants go to first.",
    )
    ab_test_hours = models.PositiveIntegerField(
        "Test hours",
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 14)],
        help_text="Test: how long after the test share is built the winner is picked.",
    )
    ab_winner_by = models.CharField(
        "Winner by",
        max_length=8,
        choices=WinnerBy.choices,
        default=WinnerBy.CLICKS,
        help_text="Test: the variant with the higher click-through (unique clicks per "
        "delivered) or delivery rate wins; a tie goes to A.",
    )
    ab_test_ends_at = models.DateTimeField(null=True, blank=True, editable=False)
    ab_winner = models.CharField(max_length=1, blank=True, editable=False)
    ab_decision = models.JSONField(
        default=dict, blank=True, editable=False, help_text="The winner, and the figures it won on."
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="campaigns")
    tags = models.ManyToManyField(Tag, blank=True, related_name="campaigns")
    segments = models.ManyToManyField(Segment, blank=True, related_name="campaigns")
    exclude_groups = models.ManyToManyField(Group, blank=True, related_name="excluded_from")
    exclude_tags = models.ManyToManyField(Tag, blank=True, related_name="excluded_from")
    exclude_segments = models.ManyToManyField(Segment, blank=True, related_name="excluded_from")
    frequency_cap = models.CharField(
        max_length=10,
        choices=FrequencyCap.choices,
        default=FrequencyCap.HOUSE,
        help_text="Only those allowed may give a campaign its own cap, or none.",
    )
    cap_messages = models.PositiveIntegerField(
        null=True, blank=True, help_text="Its own cap: at most this many marketing messages..."
    )
    cap_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="...per contact in this many days."
    )
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="Empty: send on approval.")
    time_zone = models.CharField(
        max_length=64,
        default="Europe/London",
        validators=[validate_time_zone],
        help_text="For the schedule, and for recipients whose own time zone is unknown.",
    )
    window_start = models.TimeField(
        null=True, blank=True, help_text="Quiet hours: send only from this time..."
    )
    window_end = models.TimeField(
        null=True,
        blank=True,
        help_text="...until this time, in each recipient's own time zone (empty: any time).",
    )
    brake_failure_rate = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Pause by itself when more than this share of the last sends failed (0: never).",
    )
    brake_window = models.PositiveIntegerField(
        default=200, help_text="How many of the latest sends the failure share is taken over."
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    held_reason = models.TextField(
        blank=True, editable=False, help_text="Why it came back for approval after it was approved."
    )
    held_changes = models.JSONField(
        default=dict, blank=True, editable=False, help_text="The approved samples beside the new."
    )
    pause_reason = models.CharField(max_length=500, blank=True)
    audience_stats = models.JSONField(default=dict, blank=True, editable=False)
    estimate = models.JSONField(
        default=dict, blank=True, editable=False, help_text="Audience, segments and cost at submit."
    )
    test_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    test_sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    test_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    #: The builder page it was created from, one token per page: a second post of that
    #: page (a double click, the back button) finds this campaign instead of making another.
    form_token = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    authors = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        editable=False,
        help_text="Who changed what an approval binds since the last approval: none of them "
        "may approve it.",
    )
    final_counts = models.JSONField(default=dict, blank=True, editable=False)
    final_cost = models.DecimalField(
        max_digits=14, decimal_places=5, null=True, blank=True, editable=False
    )
    materialised_at = models.DateTimeField(null=True, blank=True)
    content_purged_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When retention blanked its messages."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        permissions = [
            ("approve_campaign", "Can approve or reject campaigns"),
            ("override_frequency_cap", "Can give a campaign its own frequency cap, or none"),
        ]
        # The campaign list: newest change first, all of them or those of one status.
        indexes = [
            models.Index(fields=("-updated_at", "-id"), name="campaign_last_change"),
            models.Index(fields=("status", "-updated_at", "-id"), name="campaign_status_change"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.body:
            check_variables(self.body)
        from campaigns.variants import check_variants

        check_variants(self)
        if (self.window_start is None) != (self.window_end is None):
            raise ValidationError("Give the send window both a start and an end, or neither.")
        if self.window_start is not None and self.window_start == self.window_end:
            raise ValidationError({"window_end": "The send window cannot end when it starts."})
        if self.frequency_cap == FrequencyCap.OWN and not (self.cap_messages and self.cap_days):
            raise ValidationError(
                {"cap_messages": "Give its own cap both a number of messages and of days."}
            )

    def effective_cap(self) -> Cap | None:
        """The frequency cap its audience is held to; None when there is none."""
        if self.frequency_cap == FrequencyCap.OFF:
            return None
        if self.frequency_cap == FrequencyCap.OWN and self.cap_messages and self.cap_days:
            return Cap(self.cap_messages, self.cap_days)
        return house_cap()

    @property
    def message_body(self) -> str:
        if self.body:
            return self.body
        return self.template.body if self.template else ""

    @property
    def variant_labels(self) -> list[str]:
        """ "A", "B", ... for an A/B campaign; [] for one text to everyone."""
        from campaigns.variants import labels_of

        return labels_of(1 + len(self.variant_bodies)) if self.variant_bodies else []

    @property
    def waiting_for_winner(self) -> bool:
        """An A/B test whose winner is not picked yet: the rest of its audience waits."""
        return bool(self.variant_bodies) and self.ab_mode == ABMode.TEST and not self.ab_winner

    @property
    def sender_id(self) -> str:
        return self.sender or self.provider_account.sender

    def audience(self) -> models.QuerySet[Contact]:
        from campaigns.audience import AudienceDefinition

        return AudienceDefinition.of(self).contacts()

    def compute_content_hash(self) -> str:
        """What an approver approves: content, audience definition, provider and sender."""
        from campaigns.content import Content

        frozen = {
            "channel": self.channel,
            "provider_account": self.provider_account_id,
            "sender": self.sender_id,
            **Content.of(self).frozen(),
            **{
                name: sorted(getattr(self, name).values_list("pk", flat=True))
                for name in FIRST_AUDIENCE_FIELDS
            },
            "scheduled_at": self.scheduled_at.isoformat() if self.scheduled_at else None,
            "time_zone": self.time_zone,
            "window": [str(self.window_start), str(self.window_end)],
        }
        frozen.update(self._frozen_since_segments())
        return hashlib.sha256(json.dumps(frozen, sort_keys=True).encode()).hexdigest()

    def _frozen_since_segments(self) -> dict[str, Any]:
        """What approval binds of the audience parts added with segments, only where used,
        so a campaign approved before them keeps its hash."""
        frozen: dict[str, Any] = {}
        for name in (f for f in AUDIENCE_FIELDS if f not in FIRST_AUDIENCE_FIELDS):
            ids = sorted(getattr(self, name).values_list("pk", flat=True))
            if ids:
                frozen[name] = ids
        used = Segment.objects.filter(models.Q(campaigns=self) | models.Q(excluded_from=self))
        # A segment binds by its rules: editing one changes what was approved.
        rules = [segment.frozen() for segment in used.distinct().order_by("pk")]
        if rules:
            frozen["segment_rules"] = rules
        if self.frequency_cap != FrequencyCap.HOUSE:
            frozen["frequency_cap"] = [self.frequency_cap, self.cap_messages, self.cap_days]
        if self.variant_bodies:
            from campaigns.variants import frozen_variants

            frozen["variants"] = frozen_variants(self)
        return frozen

    def saved_content_hash(self) -> str:
        """The content hash of the campaign as saved, whatever this copy holds; '' unsaved."""
        saved = Campaign.objects.filter(pk=self.pk).first() if self.pk else None
        return saved.compute_content_hash() if saved else ""

    def note_authors(self, by: Any, before: str) -> bool:
        """Count `by` among the authors if what the approval binds changed since `before`
        (the saved content hash before their edit; '' for a campaign they created)."""
        if by is None or not by.pk or self.compute_content_hash() == before:
            return False
        self.authors.add(by)
        return True

    def validate_for_submit(self) -> None:
        problems = []
        if not self.message_body.strip():
            problems.append("it has no message body (write one or pick a template)")
        if not (self.groups.exists() or self.tags.exists() or self.segments.exists()):
            problems.append("it has no audience (choose at least one group, tag or segment)")
        if not self.provider_account.is_active:
            problems.append(f"provider account {self.provider_account} is disabled")
        elif self.channel not in self.provider_account.get_backend().channels:
            problems.append(f"provider account {self.provider_account} cannot send {self.channel}")
        unknown = [
            name for name in placeholders(self.message_body) if not self._knows_variable(name)
        ]
        if unknown:
            problems.append("no contact has the variables " + ", ".join(unknown))
        if problems:
            raise ValidationError("Cannot submit: " + "; ".join(problems) + ".")

    def _knows_variable(self, name: str) -> bool:
        if name in Contact.TEMPLATE_FIELDS:
            return True
        return self.audience().filter(attributes__has_key=name).exists()

    # State machine. `by` is None when the engine itself acts.

    def submit(self, by: Any) -> None:
        # What is saved is what gets checked, hashed and approved, not a stale copy.
        with transaction.atomic():
            Campaign.objects.select_for_update().filter(pk=self.pk).exists()
            self.refresh_from_db()
            self._submit(by)

    def _submit(self, by: Any) -> None:
        from campaigns.approval import record_estimate
        from campaigns.preview import estimate

        self.validate_for_submit()
        figures = estimate(self)
        self._transition(
            "submit",
            ACTIONS["submit"].moves,
            by,
            submitted_by=by,
            submitted_at=timezone.now(),
            content_hash=self.compute_content_hash(),
            rejection_reason="",
            held_reason="",
            held_changes={},
            estimate=figures.as_json(),
            on_success=lambda: record_estimate(self, figures),
        )

    def approve(self, by: Any, note: str = "") -> None:
        self._check_approver(by)
        refusal = withheld_reason(by, self, ACTIONS["approve"])
        if refusal:
            raise PermissionDenied(refusal)
        if self.status == self.Status.PENDING_APPROVAL and self.content_hash:
            self._refuse_if_changed_since_submit()
        self._transition(
            "approve",
            ACTIONS["approve"].moves,
            by,
            note=note,
            # The audience rule's result the approval binds, kept in the audit log with it.
            audit={"approved": {k: self.estimate.get(k) for k in APPROVED_FIGURES}},
            approved_by=by,
            approved_at=timezone.now(),
            # Only what the approver was shown: a copy from before an edit and resubmit
            # (another hash, or another submitter) approves nothing.
            extra_filter={"submitted_by": self.submitted_by_id, "content_hash": self.content_hash},
            # Approved: whoever edits it from now on is an author of what comes next.
            on_success=self.authors.clear,
        )
        self._wake_engine()

    def reject(self, by: Any, reason: str) -> None:
        self._check_approver(by)
        check_reason(ACTIONS["reject"], reason)
        self._transition(
            "reject",
            ACTIONS["reject"].moves,
            by,
            note=reason,
            rejection_reason=reason,
            content_hash="",
        )

    def return_to_draft(self, by: Any, note: str = "edited after submit") -> None:
        """An edit after submit voids the approval: the campaign must go round again."""
        self._transition(
            "edit",
            {
                self.Status.PENDING_APPROVAL: self.Status.DRAFT,
                self.Status.SCHEDULED: self.Status.DRAFT,
            },
            by,
            note=note,
            content_hash="",
            approved_by=None,
            approved_at=None,
        )

    def _refuse_if_changed_since_submit(self) -> None:
        """A template edited after submit: what the approver was shown is not what would go."""
        from campaigns.approval import ContentChanged

        if self.compute_content_hash() == self.content_hash:
            return
        reason = "The message changed after it was submitted (its message template was edited)."
        self.hold_for_approval(ContentChanged(reason))
        raise ValidationError(
            f"{reason} The figures and samples were worked out again: look again."
        )

    def hold_for_approval(self, error: Any) -> None:
        """Back to the approval queue with what changed, the new figures, and nothing built.

        By the engine, when what it is about to build is not what was approved (see
        campaigns.approval); whatever was built already is deleted unsent.
        """
        from campaigns.approval import changes_for_hold
        from campaigns.preview import estimate

        figures = estimate(self)
        changes = changes_for_hold(self, error, figures)
        self._transition(
            "hold",
            dict.fromkeys(
                (self.Status.PENDING_APPROVAL, self.Status.SCHEDULED, self.Status.SENDING),
                self.Status.PENDING_APPROVAL,
            ),
            None,
            note=error.reason,
            audit={"reason": error.reason},
            content_hash=self.compute_content_hash(),
            estimate=figures.as_json(),
            held_reason=error.reason,
            held_changes=changes,
            approved_by=None,
            approved_at=None,
            started_at=None,
            audience_stats={},
            materialised_at=None,
            on_success=lambda: self._forget_build(figures),
        )

    def _forget_build(self, figures: Any) -> None:
        from campaigns.approval import record_estimate

        # Built but never sent: the build only hands rows to senders once it has finished.
        # A few thousand a statement (a million in one would pass SQLite's variable limit).
        built = self.messages.filter(status=Message.Status.PENDING).order_by("pk")
        while ids := list(built.values_list("pk", flat=True)[:5000]):
            with transaction.atomic():
                deleted = Message.objects.filter(pk__in=ids, status=Message.Status.PENDING)
                counts.count_deleted(self.pk, Message.Status.PENDING, deleted.delete()[1])
        record_estimate(self, figures)

    def start(self) -> bool:
        """Scheduled -> sending, by the engine; False when another worker already started it."""
        try:
            self._transition(
                "start",
                {self.Status.SCHEDULED: self.Status.SENDING},
                None,
                started_at=timezone.now(),
            )
        except TransitionNotAllowed:
            return False
        return True

    def pause(self, by: Any, reason: str = "") -> None:
        self._transition("pause", ACTIONS["pause"].moves, by, note=reason, pause_reason=reason)

    def resume(self, by: Any) -> None:
        from campaigns.balance import check_resume

        check_resume(self)  # a low balance at its account must be topped up first
        self._transition("resume", ACTIONS["resume"].moves, by, pause_reason="")
        self._wake_engine()

    def cancel(self, by: Any, reason: str = "") -> None:
        self._transition(
            "cancel",
            ACTIONS["cancel"].moves,
            by,
            note=reason,
            on_success=self._cancel_unsent_messages,
        )

    def complete_if_done(self) -> bool:
        """Sending -> completed once every message is settled and the audience fully built."""
        if self.materialised_at is None:
            return False
        if self.waiting_for_winner:
            return False
        # Rows in doubt past HERALD_IN_DOUBT_GIVE_UP_SECONDS do not hold it: counted as in doubt.
        if self.messages.unfinished().exists():
            return False
        counts = self.messages.status_counts()
        # What the provider accepted is what it charges for.
        cost = self.messages.filter(sent_at__isnull=False).aggregate(total=models.Sum("cost"))[
            "total"
        ]
        try:
            self._transition(
                "complete",
                {self.Status.SENDING: self.Status.COMPLETED},
                None,
                completed_at=timezone.now(),
                final_counts=counts,
                final_cost=cost or 0,
            )
        except TransitionNotAllowed:
            return False
        return True

    # Operations that are not status moves (campaigns.actions.OPERATIONS says who and when).

    def _check_operation(self, name: str, by: Any) -> None:
        chosen = operation(name)
        if by is None or not by.has_perms(chosen.permissions):
            raise PermissionDenied(REFUSALS[chosen.permissions[-1]])
        if self.status not in chosen.statuses:
            raise TransitionNotAllowed(chosen.state_refusal)

    def duplicate(self, by: Any) -> Campaign:
        """A new draft "<name> (copy)" with this one's content, audience and settings, `by`
        its creator and author; its schedule only while that is still ahead."""
        self._check_operation("duplicate", by)
        name = self.name[: NAME_LENGTH - len(COPY_SUFFIX)]
        copy = Campaign(
            name=name + COPY_SUFFIX,
            created_by=by,
            **{field: getattr(self, field) for field in COPIED_FIELDS},
        )
        if self.scheduled_at and self.scheduled_at > timezone.now():
            copy.scheduled_at = self.scheduled_at
        if not may_override(by):
            # A cap of its own (or none) is the choice of those allowed to make it: a copy
            # made by anyone else goes back to the house setting.
            copy.frequency_cap, copy.cap_messages, copy.cap_days = FrequencyCap.HOUSE, None, None
        with transaction.atomic():
            copy.save()
            for name in AUDIENCE_FIELDS:
                getattr(copy, name).set(getattr(self, name).all())
            copy.note_authors(by, before="")
            AuditEvent.record(
                AuditEvent.Action.CAMPAIGN_DUPLICATED, actor=by, obj=copy, detail={"from": self.pk}
            )
        return copy

    def delete_draft(self, by: Any) -> None:
        """Delete a draft that never sent anything, with its history; audited."""
        self._check_operation("delete", by)
        with transaction.atomic():
            locked = Campaign.objects.select_for_update().filter(pk=self.pk)
            status = locked.values_list("status", flat=True).first()
            if status != self.Status.DRAFT:
                raise TransitionNotAllowed(operation("delete").state_refusal)
            if self.messages.exists():
                raise TransitionNotAllowed(
                    "This draft has messages from an earlier send: cancel it instead."
                )
            AuditEvent.record(
                AuditEvent.Action.CAMPAIGN_DELETED,
                actor=by,
                obj=self,
                detail={"name": self.name, "status": status},
            )
            locked.delete()

    def act(self, action: str, by: Any, note: str = "") -> None:
        """Take the staff `action` as `by`, `note` its reason: the table (campaigns.actions)
        says who may and whether a reason is required; the method checks everything else."""
        chosen = staff_action(action)
        if not may_take(by, chosen):
            raise PermissionDenied(chosen.refusal)
        check_reason(chosen, note)
        calls: dict[str, Callable[[], None]] = {
            "submit": lambda: self.submit(by=by),
            "approve": lambda: self.approve(by=by, note=note),
            "reject": lambda: self.reject(by=by, reason=note),
            "pause": lambda: self.pause(by=by, reason=note),
            "resume": lambda: self.resume(by=by),
            "cancel": lambda: self.cancel(by=by, reason=note),
        }
        calls[chosen.name]()

    def decide(self, decision: str, by: Any, shown_hash: str, reason: str = "") -> None:
        """An approver's approve or reject of the campaign as the page they decided on showed
        it (its content hash then): if it was edited and submitted again since, nothing."""
        if decision not in ("approve", "reject"):
            raise ValueError(f"not a decision: {decision!r}")
        if self.status == self.Status.PENDING_APPROVAL and shown_hash != self.content_hash:
            raise ChangedSinceShown(
                f"“{self}” was changed after this page was loaded: look at it again."
            )
        self.act(decision, by, reason)

    def _cancel_unsent_messages(self) -> None:
        self.messages.all().cancel_unsent()

    def _check_approver(self, by: Any) -> None:
        if not may_take(by, ACTIONS["approve"]):
            raise PermissionDenied(ACTIONS["approve"].refusal)

    def _transition(
        self,
        action: str,
        moves: dict[str, str],
        by: Any,
        *,
        note: str = "",
        extra_filter: dict[str, Any] | None = None,
        on_success: Callable[[], None] | None = None,
        audit: dict[str, Any] | None = None,
        **changes: Any,
    ) -> None:
        with transaction.atomic():
            current = Campaign.objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if current is None:
                raise TransitionNotAllowed(f"Cannot {action} a campaign that was deleted.")
            target = moves.get(current)
            updated = target is not None and Campaign.objects.filter(
                pk=self.pk, status=current, **(extra_filter or {})
            ).update(status=target, updated_at=timezone.now(), **changes)
            if not updated or target is None:
                label = Campaign.Status(current).label.lower()
                raise TransitionNotAllowed(f"Cannot {action} a campaign that is {label}.")
            transition = CampaignTransition.objects.create(
                campaign=self,
                from_status=current,
                to_status=target,
                by=by,
                action=action,
                note=note,
            )
            if current != target and events.status_changed.wanted():
                events.status_changed.send(sender=Campaign, transition=transition)
            # The note stays in the transition log; the audit log keeps who, what and where.
            AuditEvent.record(
                AuditEvent.Action.CAMPAIGN_TRANSITION,
                actor=by,
                obj=self,
                detail={"action": action, "from": current, "to": target, **(audit or {})},
            )
            if on_success:
                on_success()
        self.refresh_from_db()

    def _wake_engine(self) -> None:
        from django_q.tasks import async_task

        pk = self.pk
        transaction.on_commit(lambda: async_task("campaigns.tasks.run_campaign", pk))


class CampaignTransition(models.Model):
    """The log: who moved a campaign from where to where, when, and why."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="transitions")
    action = models.CharField(max_length=20)
    from_status = models.CharField(max_length=20, choices=Campaign.Status.choices)
    to_status = models.CharField(max_length=20, choices=Campaign.Status.choices)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Empty when the engine acted.",
    )
    note = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("at", "pk")

    def __str__(self) -> str:
        return f"{self.action}: {self.from_status} -> {self.to_status}"


class ApprovedContent(models.Model):
    """What an approval binds beyond the content hash: every distinct rendering the preview saw."""

    campaign = models.OneToOneField(
        Campaign, on_delete=models.CASCADE, related_name="approved_content"
    )
    #: Sorted 16-byte BLAKE2b fingerprints, one per distinct (text, parameters) rendering.
    fingerprints = models.BinaryField(default=b"")
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"approved renderings of campaign {self.campaign_id}"


class PendingApproval(Campaign):
    """Campaigns waiting for an approver: the admin's approval queue (a filtered list)."""

    class Meta:
        proxy = True
        verbose_name = "campaign awaiting approval"
        verbose_name_plural = "approval queue"


class TestNumberQuerySet(models.QuerySet["TestNumber"]):
    def of(self, user: Any) -> TestNumberQuerySet:
        """The numbers `user` may send tests to: their own, none for nobody."""
        if user is None or not user.pk:
            return self.none()
        return self.filter(user_id=user.pk)


class TestNumber(models.Model):
    """A staff member's own phone, the only kind of number a campaign's test goes to.

    Added by staff who manage test numbers (the test number permissions), never by the
    user themselves unless a superuser: a test is a message no approver has seen, so it
    may reach only a phone whose owner's colleague vouched for it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="test_numbers",
        help_text="Whose phone it is: only they can send tests to it.",
    )
    phone = PhoneNumberField()
    label = models.CharField(max_length=100, blank=True, help_text="e.g. work mobile")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TestNumberQuerySet.as_manager()
    __test__ = False  # a model, not a test class for pytest to collect

    class Meta:
        ordering = ("user", "label", "pk")
        constraints = [
            models.UniqueConstraint(fields=("user", "phone"), name="testnumber_once_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.label or 'phone'} {redact(self.phone)}"

    def clean(self) -> None:
        if self.phone and ErasedNumber.objects.includes(self.phone):
            raise ValidationError({"phone": ERASED_REFUSAL})

    @staticmethod
    def check_adder(adder: Any, owner_id: int | None) -> None:
        """Refuse a user registering their own test number, unless they are a superuser."""
        if owner_id is not None and adder.pk == owner_id and not adder.is_superuser:
            raise ValidationError(
                {"user": "Your own test numbers are added by another member of staff."}
            )
