"""Who a campaign reaches, and why not: the one audience rule.

The preview, the approval screen, the builder, `campaign preview` and the build of
the message rows all ask this module, so their numbers cannot differ. It answers in
two forms that are tested against each other:

- counting (`AudienceRule.count`): the whole audience in a few SQL statements, for
  previews and approvals of a million recipients;
- building (`AudienceRule.decider`): one decision per contact, for the engine that
  writes a Message row for each of them.

Who is in the audience at all is the campaign's definition (`AudienceDefinition`): any
mix of groups, tags and segments, minus excluded groups, tags and segments, evaluated
afresh each time it is asked.

A contact is *queued*, or *skipped* for the first of these reasons that applies
(`REASONS`, in this order): opted out on the campaign's channel; its number erased
at its owner's request; a number that is not E.164; a number seen earlier in the
audience; messaged as often as the frequency cap allows lately (campaigns.frequency);
no moment in the coming days when the send window is open in all of its time zones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db.models import BooleanField, Count, Exists, Func, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns.frequency import over_cap
from campaigns.segments import Evaluation, Segment
from campaigns.windows import Window, recipient_zones
from contacts.models import Contact, ErasedNumber, Group, OptOut, Tag
from messaging.models import Message

if TYPE_CHECKING:
    from campaigns.content import Content
    from campaigns.models import Campaign

R = Message.SkipReason
#: Every reason a recipient is skipped, in the order they are checked.
REASONS: tuple[str, ...] = (
    R.OPTED_OUT,
    R.ERASED,
    R.INVALID_NUMBER,
    R.DUPLICATE,
    R.FREQUENCY_CAP,
    R.NO_SEND_WINDOW,
)
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
#: The suppression list is read into memory once when it is at most this long.
SUPPRESSION_IN_MEMORY = 500_000
#: Rows read per statement when the counting form must look at each number.
READ_CHUNK = 5000


class IsE164(Func):
    """Whether a column holds an E.164 number, as E164 says, in SQL that costs little a row:
    GLOB on SQLite (its REGEXP is a Python call a row), a regular expression elsewhere."""

    output_field = BooleanField()
    conditional = True
    template = "(%(expressions)s ~ '^\\+[1-9][0-9]{6,14}$')"

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        phone = "%(expressions)s"
        template = (
            f"({phone} GLOB '+[1-9][0-9][0-9][0-9][0-9][0-9][0-9]*' "
            f"AND NOT substr({phone}, 2) GLOB '*[^0-9]*' AND length({phone}) <= 16)"
        )
        return self.as_sql(compiler, connection, template=template, **extra)


@dataclass
class AudiencePart:
    """One group, tag or segment of an audience definition, and how many contacts it has."""

    kind: str  # "group", "tag" or "segment"
    name: str
    size: int
    excluded: bool


@dataclass
class AudienceDefinition:
    """Who a campaign is for before anyone is skipped: any mix of groups, tags and
    segments, minus excluded groups, tags and segments."""

    groups: list[Group] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    exclude_groups: list[Group] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    exclude_tags: list[Tag] = field(default_factory=list)
    exclude_segments: list[Segment] = field(default_factory=list)
    #: Segments are evaluated as of this moment; their warnings are collected here.
    evaluation: Evaluation = field(default_factory=Evaluation, repr=False)

    @classmethod
    def of(cls, campaign: Campaign) -> AudienceDefinition:
        from campaigns.models import AUDIENCE_FIELDS

        parts: dict[str, Any] = {
            name: list(getattr(campaign, name).all()) for name in AUDIENCE_FIELDS
        }
        return cls(**parts)

    @classmethod
    def from_values(cls, values: Any) -> AudienceDefinition:
        """From a form's cleaned data (a campaign not saved yet); missing parts are empty."""
        from campaigns.models import AUDIENCE_FIELDS

        parts: dict[str, Any] = {name: list(values.get(name) or ()) for name in AUDIENCE_FIELDS}
        return cls(**parts)

    @property
    def is_empty(self) -> bool:
        return not (self.groups or self.tags or self.segments)

    @property
    def warnings(self) -> list[str]:
        """What evaluating its segments found worth saying (unknown attributes, groups)."""
        return self.evaluation.warnings

    def contacts(self, after: int = 0) -> QuerySet[Contact]:
        """Who is in it; with `after`, only contacts with a greater id (a chunk at a time:
        every subquery is bounded too, so each chunk costs the same)."""
        evaluation = replace(self.evaluation, after=after)  # same moment, same warnings
        return Contact.objects.in_audience(
            self.groups,
            self.tags,
            self.exclude_groups,
            self.exclude_tags,
            also=[segment.condition(evaluation) for segment in self.segments],
            minus=[segment.condition(evaluation) for segment in self.exclude_segments],
            after=after,
        )

    def parts(self) -> list[AudiencePart]:
        """Each part's own size (before exclusions and skips), targeted ones first."""
        members = Contact.groups.through.objects
        taggings = Contact.tags.through.objects
        found = []
        for excluded, groups, tags, segments in (
            (False, self.groups, self.tags, self.segments),
            (True, self.exclude_groups, self.exclude_tags, self.exclude_segments),
        ):
            found += [
                AudiencePart("group", g.name, members.filter(group=g).count(), excluded)
                for g in groups
            ]
            found += [
                AudiencePart("tag", t.name, taggings.filter(tag=t).count(), excluded) for t in tags
            ]
            found += [
                AudiencePart("segment", s.name, s.contacts(self.evaluation).count(), excluded)
                for s in segments
            ]
        return found


@dataclass
class AudienceCount:
    """The rule's answer for a whole audience: how many, queued, skipped per reason."""

    audience: int = 0
    queued: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    #: Contacts skipped for a reason SQL cannot see: their send window never opens.
    window_skipped_ids: set[int] = field(default_factory=set, repr=False)
    #: Queued contacts per distinct combination of the values the content reads.
    groups: Counter[tuple[Any, ...]] = field(default_factory=Counter, repr=False)


class AudienceRule:
    """The audience of one campaign (or of a builder's unsaved form), and who is skipped."""

    def __init__(self, campaign: Campaign, definition: AudienceDefinition | None = None) -> None:
        self.channel = campaign.channel
        self.campaign_id = campaign.pk
        self.cap = campaign.effective_cap()
        #: Who the campaign is for; `definition` stands for it when it is not saved yet.
        self.definition = AudienceDefinition.of(campaign) if definition is None else definition
        self.contacts = self.definition.contacts()
        self.window = Window(campaign.window_start, campaign.window_end)
        self.fallback_zone = campaign.time_zone
        now = timezone.now()
        #: From when messages may go: the schedule, or now when that has passed.
        self.start = max(now, campaign.scheduled_at or now)

    # --- counting --------------------------------------------------------------------------

    def count(self, content: Content | None = None) -> AudienceCount:
        """The whole audience counted in one scan; with `content`, the queued contacts are
        also grouped by the values it reads (`AudienceCount.groups`), for segments and cost.

        The opted-out are counted from the suppression list's side (usually short, each
        number found through the phone index), then taken off. Numbers are looked at one by
        one only when some number was ever erased (they are kept as keyed hashes) or when
        a send window is set.
        """
        result = AudienceCount()
        for values, audience, invalid in self._grouped(self.contacts, content):
            result.audience += audience
            result.skipped[R.INVALID_NUMBER] += invalid
            result.groups[values] += audience - invalid
        opted_out = self.contacts.filter(
            phone__in=OptOut.objects.filter(channel=self.channel).values("phone")
        )
        for values, audience, invalid in self._grouped(opted_out, content):
            # Opted out comes first: a malformed number on the list counts as opted out.
            result.skipped[R.OPTED_OUT] += audience
            result.skipped[R.INVALID_NUMBER] -= invalid
            result.groups[values] -= audience - invalid
        erased = self._erased_phones()
        if erased:
            result.skipped[R.ERASED] = len(erased)
            # Erased comes next: an erased number that is also malformed counts as erased.
            result.skipped[R.INVALID_NUMBER] -= sum(1 for p in erased if not E164.fullmatch(p))
            ids = self.contacts.filter(phone__in=erased).values_list("pk", flat=True)
            self._take_off(result, list(ids), content)
        # Contact.phone is unique, so an audience never holds a number twice: the building
        # form checks all the same, and counts what it finds.
        result.skipped[R.DUPLICATE] = 0
        capped = self._capped_ids(erased)
        if capped:
            result.skipped[R.FREQUENCY_CAP] = len(capped)
            self._take_off(result, sorted(capped), content)
        if not self.window.always_open:
            result.window_skipped_ids = self._never_open_ids(erased) - capped
            result.skipped[R.NO_SEND_WINDOW] = len(result.window_skipped_ids)
            self._take_off(result, sorted(result.window_skipped_ids), content)
        for values in [v for v, count in result.groups.items() if count <= 0]:
            del result.groups[values]
        result.queued = result.audience - sum(result.skipped.values())
        return result

    def _grouped(
        self, contacts: QuerySet[Contact], content: Content | None
    ) -> Iterator[tuple[tuple[Any, ...], int, int]]:
        """Per combination of the values `content` reads: (the values, how many contacts,
        how many of them have a number that is not E.164)."""
        columns = content.columns if content else []
        if content is not None:
            contacts = content.with_fields(contacts)
        counts = {"n": Count("pk"), "invalid": Count("pk", filter=~Q(IsE164("phone")))}
        if not columns:  # one group: values_list() of nothing would mean every field
            total = contacts.order_by().aggregate(**counts)
            yield (), total["n"], total["invalid"]
            return
        rows = contacts.order_by().values_list(*columns).annotate(**counts)
        for *values, count, invalid in rows.iterator(chunk_size=5000):
            yield tuple(values), count, invalid

    def _take_off(self, result: AudienceCount, ids: list[int], content: Content | None) -> None:
        """Queued contacts skipped for a reason SQL cannot see, taken off their groups."""
        for start in range(0, len(ids), READ_CHUNK):
            chunk = Contact.objects.filter(pk__in=ids[start : start + READ_CHUNK])
            for values, count, invalid in self._grouped(chunk, content):
                result.groups[values] -= count - invalid

    def sendable(self, after: int = 0) -> QuerySet[Contact]:
        """The audience minus what SQL can tell is skipped: opted out, malformed numbers."""
        return self.contacts_after(after).exclude(self._suppressed()).filter(IsE164("phone"))

    def contacts_after(self, after: int) -> QuerySet[Contact]:
        """The audience past contact id `after` (all of it for 0), for reading in chunks."""
        return self.definition.contacts(after) if after else self.contacts

    def first_queued(self, how_many: int) -> list[int]:
        """The ids of the first `how_many` queued contacts (for samples and test sends)."""
        if how_many <= 0:
            return []
        decider = self.decider()
        found: list[int] = []
        # Every contact in id order, the decider telling who is queued: a filter here makes
        # SQLite sort the whole audience before it returns the first hundred.
        for rows in self._chunks(self.contacts_after, "pk", "phone", "timezone", size=100):
            decider.prepare((phone for _, phone, _ in rows), [pk for pk, _, _ in rows])
            found += [pk for pk, phone, zone in rows if not decider.decide(phone, zone, pk).reason]
            if len(found) >= how_many:
                break
        return found[:how_many]

    def _suppressed(self) -> Exists:
        return Exists(OptOut.objects.filter(phone=OuterRef("phone"), channel=self.channel))

    def _erased_phones(self) -> set[str]:
        if not ErasedNumber.objects.exists():
            return set()
        erased: set[str] = set()
        for phones in self._chunks(self._unsuppressed, "phone"):
            erased |= ErasedNumber.objects.among([phone for (phone,) in phones])
        return erased

    def _capped_ids(self, erased: set[str]) -> set[int]:
        """Queued so far (not opted out, erased or malformed) but over the frequency cap."""
        if self.cap is None:
            return set()
        over = self.sendable().filter(pk__in=over_cap(self.cap, self.campaign_id))
        return {pk for pk, phone in over.values_list("pk", "phone") if phone not in erased}

    def _unsuppressed(self, after: int) -> QuerySet[Contact]:
        return self.contacts_after(after).exclude(self._suppressed())

    def _never_open_ids(self, erased: set[str]) -> set[int]:
        decider = _WindowDecider(self)
        closed: set[int] = set()
        for rows in self._chunks(self.sendable, "pk", "phone", "timezone"):
            for pk, phone, own_zone in rows:
                if phone not in erased and decider.opening(phone, own_zone)[1] is None:
                    closed.add(pk)
        return closed

    @staticmethod
    def _chunks(
        contacts_after: Callable[[int], QuerySet[Contact]], *columns: str, size: int = READ_CHUNK
    ) -> Iterator[list[tuple[Any, ...]]]:
        """`columns` of the contacts `contacts_after(id)` gives, in id order, `size` rows a
        statement (keyset paging)."""
        after = 0
        while True:
            chunk = contacts_after(after).filter(pk__gt=after).order_by("pk")
            rows = list(chunk.values_list("pk", *columns)[:size])
            if not rows:
                return
            after = rows[-1][0]
            yield [row[1:] for row in rows]

    # --- building --------------------------------------------------------------------------

    def decider(self) -> Decider:
        """The building form: one decision per contact, in the order the build reads them."""
        return Decider(self)


class _WindowDecider:
    """When a recipient's window next opens, worked out once per set of zones."""

    def __init__(self, rule: AudienceRule) -> None:
        self.window = rule.window
        self.start = rule.start
        self.fallback_zone = rule.fallback_zone
        self._opens: dict[tuple[str, ...], datetime | None] = {}

    def opening(self, phone: str, own_zone: str) -> tuple[tuple[str, ...], datetime | None]:
        """(the recipient's zones, the first moment from the start inside the window)."""
        if self.window.always_open:
            return (), self.start
        zones = recipient_zones(phone, own_zone=own_zone, fallback=self.fallback_zone)
        if zones not in self._opens:
            self._opens[zones] = self.window.next_open(zones, self.start)
        return zones, self._opens[zones]


class Decision(NamedTuple):
    reason: str  # "" when queued
    zones: tuple[str, ...]
    due: datetime | None


class Decider:
    """Decides contact after contact; `prepare` each chunk of numbers first."""

    def __init__(self, rule: AudienceRule) -> None:
        self.channel = rule.channel
        self.cap = rule.cap
        self.campaign_id = rule.campaign_id
        self.windows = _WindowDecider(rule)
        self._capped: set[int] = set()
        self._seen: set[str] = set()
        self._erased: set[str] = set()
        self._opted_out: set[str] = set()
        # The suppression list, read once when it is small enough to hold (the usual case).
        suppression = OptOut.objects.filter(channel=rule.channel)
        self._all_opted_out: set[str] | None = None
        if suppression.count() <= SUPPRESSION_IN_MEMORY:
            self._all_opted_out = set(suppression.values_list("phone", flat=True))

    def prepare(self, phones: Iterable[str], contact_ids: Iterable[int] = ()) -> None:
        """Look up the chunk's numbers on the suppression and erasure lists, and its
        contacts against the frequency cap."""
        phones = list(phones)
        if self.cap is not None:
            capped = over_cap(self.cap, self.campaign_id, contact_ids)
            self._capped = set(capped.values_list("contact_id", flat=True))
        if self._all_opted_out is None:
            self._opted_out = set(
                OptOut.objects.filter(channel=self.channel, phone__in=phones).values_list(
                    "phone", flat=True
                )
            )
        # Erased numbers are kept only as keyed hashes: each phone is hashed (~1.5 µs),
        # and only while at least one number was ever erased.
        self._erased = ErasedNumber.objects.among(phones)

    def decide(self, phone: str, own_zone: str, contact_id: int | None = None) -> Decision:
        zones, due = self.windows.opening(phone, own_zone)
        opted_out = self._all_opted_out if self._all_opted_out is not None else self._opted_out
        reason = ""
        if phone in opted_out:
            reason = R.OPTED_OUT
        elif phone in self._erased:
            reason = R.ERASED
        elif not E164.fullmatch(phone):
            reason = R.INVALID_NUMBER
        elif phone in self._seen:
            reason = R.DUPLICATE
        elif contact_id in self._capped:
            reason = R.FREQUENCY_CAP
        elif due is None:
            reason = R.NO_SEND_WINDOW
        self._seen.add(phone)
        return Decision(reason, zones, due)
