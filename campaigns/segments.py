"""Segments: saved, named rules over contacts, evaluated afresh whenever they are asked.

A rule is one line, `FIELD OP VALUE` (README, "Segments"): `attr.city = Leeds`,
`country in GB,IE`, `group != Newsletter`, `attr.age >= 18`, `received any within 7`.
Each compiles to one SQL condition on Contact, so a segment is a queryset: the audience
rule (campaigns.audience) counts and builds it like any group, and a segment is never a
stale copy of who matched once.

Text is matched case-insensitively. A value of the wrong type (a date rule on a text
attribute) does not match; an attribute no contact has matches no one, with a warning.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, F, Func, OuterRef, Q, Value
from django.db.models.functions import Lower
from django.db.models.lookups import (
    Contains,
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from audit.models import AuditEvent
from contacts.models import Contact, Group, OptOut, Tag
from messaging.models import Link, Message

TEXT_FIELDS = ("first_name", "last_name", "email", "language", "timezone")
ENGAGEMENT_FIELDS = ("received", "delivered", "failed", "clicked")
FLAG_FIELDS = ("opted_out.sms", "opted_out.whatsapp", "never_messaged")
FIELDS = (*TEXT_FIELDS, "created", "country", "group", "tag", *FLAG_FIELDS, *ENGAGEMENT_FIELDS)
ATTRIBUTE_PREFIX = "attr."

TEXT_OPS = ("=", "!=", "contains", "in", "not in", "set", "unset")
COMPARE_OPS = ("<", "<=", ">", ">=")
DATE_OPS = ("before", "after", "within")
OPS = (*TEXT_OPS, *COMPARE_OPS, *DATE_OPS)
#: Which operators each kind of field takes.
OPS_OF = {
    "text": TEXT_OPS,
    "attribute": (*TEXT_OPS, *COMPARE_OPS, *DATE_OPS),
    "created": ("=", *DATE_OPS),
    "country": ("=", "!=", "in", "not in", "set", "unset"),
    "member": ("=", "!=", "in", "not in"),
    "flag": ("=", "!="),
    "engagement": ("=", "!="),
}
YES, NO = ("yes", "true", "1"), ("no", "false", "0")
#: Message statuses each engagement field looks for.
ENGAGED = {
    "received": (Message.Status.SENT, Message.Status.DELIVERED),
    "delivered": (Message.Status.DELIVERED,),
    "failed": (Message.Status.FAILED,),
}
#: A message "went out" to its contact in these statuses (never_messaged looks for none).
WENT_OUT = (
    Message.Status.SENDING,
    Message.Status.SENT,
    Message.Status.DELIVERED,
    Message.Status.FAILED,
    Message.Status.IN_DOUBT,
)
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
NUMBER = re.compile(r"-?\d+(\.\d+)?")
COUNTRY = re.compile(r"[A-Za-z]{2}")
ENGAGEMENT_VALUE = re.compile(r"(?P<which>any|\d+)(\s+within\s+(?P<days>\d+))?", re.IGNORECASE)


class RuleError(ValueError):
    """A rule that cannot be read; the text names the rule and what is wrong with it."""


def kind_of(field_name: str) -> str:
    if field_name.startswith(ATTRIBUTE_PREFIX):
        return "attribute"
    if field_name in TEXT_FIELDS:
        return "text"
    if field_name in ("group", "tag"):
        return "member"
    if field_name in FLAG_FIELDS:
        return "flag"
    if field_name in ENGAGEMENT_FIELDS:
        return "engagement"
    return field_name  # created, country


@dataclass(frozen=True)
class Rule:
    field: str
    op: str
    value: str = ""

    def __str__(self) -> str:
        if self.kind == "engagement" and self.op == "=":
            return f"{self.field} {self.value}"
        return " ".join(part for part in (self.field, self.op, self.value) if part)

    @property
    def kind(self) -> str:
        return kind_of(self.field)

    @property
    def attribute(self) -> str:
        return self.field[len(ATTRIBUTE_PREFIX) :]

    @property
    def values(self) -> list[str]:
        """The comma-separated values of `in`, else the one value."""
        if self.op in ("in", "not in"):
            return [part.strip() for part in self.value.split(",") if part.strip()]
        return [self.value]

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Read `FIELD OP VALUE`; RuleError names the rule and what is wrong."""
        try:
            return _checked(_split(text.strip()))
        except RuleError as exc:
            raise RuleError(f"rule {text.strip()!r}: {exc}") from None


def _split(text: str) -> Rule:
    if not text:
        raise RuleError("the rule is empty")
    head, _, rest = text.partition(" ")
    name = head if head.startswith(ATTRIBUTE_PREFIX) else head.lower()
    if name not in FIELDS and not (name.startswith(ATTRIBUTE_PREFIX) and len(name) > 5):
        raise RuleError(f"unknown field {head!r}: use one of {', '.join(FIELDS)} or attr.NAME")
    rest = rest.strip()
    kind = kind_of(name)
    if kind in ("flag", "engagement"):
        op, value = ("!=", rest[2:]) if rest.startswith("!=") else ("=", rest.removeprefix("="))
        return Rule(name, op, value.strip())
    op, value = _operator(rest)
    return Rule(name, op, _unquoted(value.strip()))


def _operator(rest: str) -> tuple[str, str]:
    lowered = rest.lower()
    if lowered == "not in" or lowered.startswith("not in "):
        return "not in", rest[6:]
    for op in ("!=", "<=", ">=", "=", "<", ">"):
        if rest.startswith(op):
            return op, rest[len(op) :]
    word, _, value = rest.partition(" ")
    if word.lower() in OPS:
        return word.lower(), value
    if not word:
        raise RuleError("no operator: write FIELD OP VALUE, e.g. attr.city = Leeds")
    raise RuleError(f"unknown operator {word!r}: use one of {', '.join(OPS)}")


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _checked(rule: Rule) -> Rule:
    kind = rule.kind
    if rule.op not in OPS_OF[kind]:
        allowed = ", ".join(OPS_OF[kind])
        raise RuleError(f"{rule.field} takes the operators {allowed}, not {rule.op!r}")
    if rule.op in ("set", "unset"):
        if rule.value:
            raise RuleError(f"{rule.op} takes no value")
        return rule
    if kind == "flag":
        return _checked_flag(rule)
    if kind == "engagement":
        return _checked_engagement(rule)
    if not rule.values or not all(rule.values):
        raise RuleError(f"{rule.op} needs a value")
    if rule.op in COMPARE_OPS and not NUMBER.fullmatch(rule.value):
        raise RuleError(f"{rule.op} compares numbers, and {rule.value!r} is not one")
    if rule.op == "within" and not rule.value.isdigit():
        raise RuleError(f"within takes a number of days, not {rule.value!r}")
    if (rule.op in ("before", "after") or (kind == "created" and rule.op == "=")) and not (
        _date(rule.value)
    ):
        raise RuleError(f"{rule.op} takes a date written YYYY-MM-DD, not {rule.value!r}")
    if kind == "country":
        if not all(COUNTRY.fullmatch(v) for v in rule.values):
            raise RuleError("country takes ISO codes of two letters, such as GB")
        return Rule(rule.field, rule.op, ",".join(v.upper() for v in rule.values))
    return rule


def _checked_flag(rule: Rule) -> Rule:
    value = rule.value.lower() or "yes"
    if value not in YES + NO:
        raise RuleError(f"{rule.field} is yes or no, not {rule.value!r}")
    wanted = (value in YES) == (rule.op == "=")
    return Rule(rule.field, "=", "yes" if wanted else "no")


def _checked_engagement(rule: Rule) -> Rule:
    found = ENGAGEMENT_VALUE.fullmatch(rule.value)
    if not found:
        raise RuleError(
            f"{rule.field} takes a campaign id or 'any', then optionally 'within DAYS' "
            f"(e.g. {rule.field} any within 7)"
        )
    value = found["which"].lower() + (f" within {int(found['days'])}" if found["days"] else "")
    return Rule(rule.field, rule.op, value)


def _date(text: str) -> date | None:
    if not ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_rules(lines: Iterable[str]) -> list[Rule]:
    """Every non-blank line read as a rule (RuleError at the first bad one)."""
    return [Rule.parse(line) for line in lines if line.strip()]


# --- SQL ---------------------------------------------------------------------------------


class AttributeText(Func):
    """A custom attribute's value as text (NULL where the contact has none): one read of
    the JSON a row (Django's key transform reads it twice or three times on SQLite)."""

    output_field = models.TextField()

    def __init__(self, name: str) -> None:
        super().__init__(F("attributes"))
        self.name = name

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, *args: Any, **extra: Any
    ) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "sqlite":
            return f"({column} ->> %s)", (*params, "$." + json.dumps(self.name))
        return f"({column} ->> %s)", (*params, self.name)


class _OnAttributeText(Func):
    """SQL that reads the attribute's text several times: compiled once, its parameters
    repeated for each place it stands in `{v}`."""

    postgresql = sqlite = ""

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, *args: Any, **extra: Any
    ) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        template = self.sqlite if connection.vendor == "sqlite" else self.postgresql
        return template.format(v=sql), tuple(params) * template.count("{v}")


class AttributeNumber(_OnAttributeText):
    """An attribute's value as a number, NULL where it is not written as one."""

    output_field = models.FloatField()
    postgresql = (
        "(CASE WHEN {v} ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$' THEN CAST({v} AS DOUBLE PRECISION) END)"
    )
    # GLOB, not REGEXP: SQLite's REGEXP is a Python call a row.
    sqlite = (
        "(CASE WHEN (TRIM({v}) GLOB '[0-9]*' OR TRIM({v}) GLOB '-[0-9]*') "
        "AND NOT substr(TRIM({v}), 2) GLOB '*[^0-9.]*' AND NOT TRIM({v}) GLOB '*.*.*' "
        "AND NOT TRIM({v}) GLOB '*.' AND NOT TRIM({v}) GLOB '-.*' "
        "THEN CAST(TRIM({v}) AS REAL) END)"
    )


class AttributeDate(_OnAttributeText):
    """An attribute's value as an ISO date (its first ten characters), NULL where it does
    not start YYYY-MM-DD."""

    output_field = models.CharField()
    postgresql = "(CASE WHEN {v} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}' THEN LEFT({v}, 10) END)"
    sqlite = (
        "(CASE WHEN {v} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' "
        "THEN substr({v}, 1, 10) END)"
    )


#: Values the SQLite prefilter (StoredJsonMayHold) can look for: ASCII letters, with spaces
#: and a little punctuation, and no digit (a JSON number or true/false reads back as digits).
PREFILTERABLE = re.compile(r"[A-Za-z][A-Za-z .'&-]*")


class StoredJsonMayHold(Func):
    """On SQLite, whether the attributes' stored JSON text holds one of `values` anywhere, in
    any case: a LIKE costing a fraction of reading the JSON, put before that read so it is
    done only for the rows that pass (it halves bench/segments.py's three-rule count over a
    million contacts). Elsewhere TRUE: PostgreSQL keeps jsonb parsed.

    Exact for `=` and `in` with PREFILTERABLE values. SQLite's LOWER() changes ASCII letters
    only, so an attribute whose lowered text is such a value is a JSON string of the same
    ASCII characters in some case, and every writer (json.dumps, SQLite's and PostgreSQL's
    JSON functions) writes those characters as they are: JSON escapes no letter, space or
    such punctuation. LIKE ignores ASCII case, and the values hold no `%` or `_`."""

    output_field = models.BooleanField()
    conditional = True

    def __init__(self, values: list[str]) -> None:
        super().__init__(F("attributes"))
        self.values = values

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, *args: Any, **extra: Any
    ) -> Any:
        if connection.vendor != "sqlite":
            return "TRUE", ()
        column, params = compiler.compile(self.source_expressions[0])
        likes = " OR ".join(f"{column} LIKE %s" for _ in self.values)
        return f"({likes})", tuple(params) * len(self.values) + tuple(
            f"%{value}%" for value in self.values
        )


@dataclass
class Evaluation:
    """One evaluation of rules: the moment it is made at, and what it had to say."""

    now: datetime = field(default_factory=timezone.now)
    warnings: list[str] = field(default_factory=list)
    #: Only contacts with a greater id are asked about (a chunk of a build): subqueries
    #: over memberships and messages are bounded by it too.
    after: int = 0
    # Looked up once per evaluation, however many chunks of a build ask (shared by the
    # copies `dataclasses.replace` makes for each chunk).
    _known_attributes: dict[str, bool] = field(default_factory=dict)
    _named: dict[tuple[str, str], int | None] = field(default_factory=dict)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def has_attribute(self, name: str) -> bool:
        if name not in self._known_attributes:
            self._known_attributes[name] = Contact.objects.filter(attributes__has_key=name).exists()
        return self._known_attributes[name]

    def named_id(self, kind: str, name: str) -> int | None:
        """The id of the group or tag of that name (any case), None if there is none."""
        if (kind, name) not in self._named:
            model = Group if kind == "group" else Tag
            found = model.objects.filter(name__iexact=name).values_list("pk", flat=True)
            self._named[kind, name] = found.first()
        return self._named[kind, name]

    def condition(self, rule: Rule) -> Q:
        return _CONDITIONS[rule.kind](self, rule)

    def today(self) -> date:
        return timezone.localdate(self.now)


NOBODY = Q(pk__in=[])


def _text_condition(text: Any, rule: Rule) -> Q:
    """Case-insensitive text rules over a text expression (a field or an attribute)."""
    lowered = Lower(text)
    filled = Q(IsNull(text, False)) & ~Q(Exact(text, ""))
    if rule.op == "set":
        return filled
    if rule.op == "unset":
        return ~filled
    # The database lowers the values as it lowers the text: SQLite's LOWER() leaves letters
    # outside ASCII as they are, so Python's lower() of 'Émile' would never equal its 'Émile'.
    if rule.op == "contains":
        return Q(Contains(lowered, Lower(Value(rule.value))))
    equal = Q(In(lowered, [Lower(Value(v)) for v in rule.values]))
    if rule.op in ("=", "in"):
        return equal
    return ~equal | Q(IsNull(text, True))  # "!=", "not in": also those with no value


def _compare(value: Any, op: str, other: Any) -> Q:
    lookup = {
        "<": LessThan,
        "<=": LessThanOrEqual,
        ">": GreaterThan,
        ">=": GreaterThanOrEqual,
    }[op]
    return Q(lookup(value, other))


def _attribute(evaluation: Evaluation, rule: Rule) -> Q:
    if not evaluation.has_attribute(rule.attribute):
        evaluation.warn(
            f"No contact has the attribute {rule.attribute!r}: the rule '{rule}' matches no one."
        )
        return NOBODY
    text = AttributeText(rule.attribute)
    if rule.op in COMPARE_OPS:
        return _compare(AttributeNumber(text), rule.op, Value(float(rule.value)))
    if rule.op in DATE_OPS:
        day = AttributeDate(text)
        if rule.op == "within":
            since = evaluation.today() - timedelta(days=int(rule.value))
            return _compare(day, ">=", Value(since.isoformat())) & _compare(
                day, "<=", Value(evaluation.today().isoformat())
            )
        op = "<" if rule.op == "before" else ">"
        return _compare(day, op, Value(rule.value))
    if rule.op in ("=", "in") and all(PREFILTERABLE.fullmatch(v) for v in rule.values):
        return Q(StoredJsonMayHold(rule.values)) & _text_condition(text, rule)
    return _text_condition(text, rule)


def _text_field(evaluation: Evaluation, rule: Rule) -> Q:
    return _text_condition(F(rule.field), rule)


def _created(evaluation: Evaluation, rule: Rule) -> Q:
    if rule.op == "within":
        return Q(created_at__gte=evaluation.now - timedelta(days=int(rule.value)))
    day = _date(rule.value)
    assert day is not None  # checked when parsed
    start = timezone.make_aware(datetime.combine(day, time.min))
    end = start + timedelta(days=1)
    if rule.op == "before":
        return Q(created_at__lt=start)
    if rule.op == "after":
        return Q(created_at__gte=end)
    return Q(created_at__gte=start, created_at__lt=end)


def _country(evaluation: Evaluation, rule: Rule) -> Q:
    if rule.op == "set":
        return ~Q(country="")
    if rule.op == "unset":
        return Q(country="")
    chosen = Q(country__in=rule.values)
    return chosen if rule.op in ("=", "in") else ~chosen


def _member(evaluation: Evaluation, rule: Rule) -> Q:
    ids = []
    for name in rule.values:
        found = evaluation.named_id(rule.field, name)
        if found is None:
            evaluation.warn(f"There is no {rule.field} named {name!r} (in the rule '{rule}').")
        else:
            ids.append(found)
    if rule.op in ("!=", "not in") and len(ids) < len(rule.values):
        # Most likely a misspelt name: "not in" it would be everyone, as an unknown attribute
        # matches no one rather than all.
        return NOBODY
    through = (Contact.groups if rule.field == "group" else Contact.tags).through
    bounds = {f"{rule.field}_id__in": ids, "contact_id": OuterRef("pk")}
    if evaluation.after:
        bounds["contact_id__gt"] = evaluation.after
    member = Q(Exists(through.objects.filter(**bounds)))
    return member if rule.op in ("=", "in") else ~member


def _opted_out(evaluation: Evaluation, rule: Rule) -> Q:
    channel = rule.field.split(".", 1)[1]
    listed = Q(Exists(OptOut.objects.filter(phone=OuterRef("phone"), channel=channel)))
    return listed if rule.value == "yes" else ~listed


def _messaged(
    evaluation: Evaluation, statuses: Iterable[str], since: datetime | None = None
) -> models.QuerySet[Any]:
    """Contact ids with a campaign message in one of `statuses` (tests excluded)."""
    found = Message.objects.filter(
        contact_id__gt=evaluation.after,  # also: not NULL, which NOT IN could not bear
        campaign_id__isnull=False,
        is_test=False,
        status__in=statuses,
    )
    if since is not None:
        found = found.filter(created_at__gte=since)
    return found.values("contact_id")


def _clicked(evaluation: Evaluation, since: datetime | None = None) -> models.QuerySet[Any]:
    """Contact ids with a campaign message one of whose short links they followed (in the
    last N days: a click since `since`; test sends excluded)."""
    links = Link.objects.filter(last_clicked_at__isnull=False)
    if since is not None:
        links = links.filter(last_clicked_at__gte=since)
    return Message.objects.filter(
        contact_id__gt=evaluation.after,
        campaign_id__isnull=False,
        is_test=False,
        pk__in=links.values("message_id"),
    ).values("contact_id")


def _never_messaged(evaluation: Evaluation, rule: Rule) -> Q:
    never = ~Q(pk__in=_messaged(evaluation, WENT_OUT))
    return never if rule.value == "yes" else ~never


def _engagement(evaluation: Evaluation, rule: Rule) -> Q:
    found = ENGAGEMENT_VALUE.fullmatch(rule.value)
    assert found is not None  # checked when parsed
    since = None
    if found["days"]:
        since = evaluation.now - timedelta(days=int(found["days"]))
    if rule.field == "clicked":
        messages = _clicked(evaluation, since)
    else:
        messages = _messaged(evaluation, ENGAGED[rule.field], since)
    if found["which"] != "any":
        messages = messages.filter(campaign_id=int(found["which"]))
    engaged = Q(pk__in=messages)
    return engaged if rule.op == "=" else ~engaged


_CONDITIONS = {
    "text": _text_field,
    "attribute": _attribute,
    "created": _created,
    "country": _country,
    "member": _member,
    "flag": lambda evaluation, rule: (
        _never_messaged(evaluation, rule)
        if rule.field == "never_messaged"
        else _opted_out(evaluation, rule)
    ),
    "engagement": _engagement,
}


#: Which rules SQL should weigh first (cheapest first: SQLite tests them in this order).
COST = {"country": 0, "text": 1, "created": 1, "member": 2, "flag": 3, "attribute": 4}


def conditions_of(evaluation: Evaluation, rules: list[Rule]) -> list[Q]:
    ordered = sorted(rules, key=lambda rule: COST.get(rule.kind, 5))
    return [evaluation.condition(rule) for rule in ordered]


def combined(conditions: list[Q], match_any: bool) -> Q:
    if not conditions:
        return NOBODY
    result = conditions[0]
    for condition in conditions[1:]:
        result = (result | condition) if match_any else (result & condition)
    return result


# --- the model ---------------------------------------------------------------------------


class SegmentInUse(ValidationError):
    """A segment some campaign targets or excludes: deleting it would change that campaign."""


class Segment(models.Model):
    """A saved, named set of rules: contacts matching all of them (or any, `match_any`)."""

    name = models.CharField(max_length=100, unique=True)
    match_any = models.BooleanField(
        default=False, help_text="Match contacts meeting any rule (otherwise all of them)."
    )
    rules = models.JSONField(
        default=list, help_text="One rule a line: FIELD OP VALUE, e.g. attr.city = Leeds."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            parsed = parse_rules(self.rules)
        except RuleError as exc:
            raise ValidationError({"rules": str(exc)}) from None
        if not parsed:
            raise ValidationError({"rules": "Give the segment at least one rule."})
        self.rules = [str(rule) for rule in parsed]

    def parsed_rules(self) -> list[Rule]:
        return parse_rules(self.rules)

    def condition(self, evaluation: Evaluation) -> Q:
        """The SQL condition a contact meets to be in the segment, as of `evaluation.now`."""
        return combined(conditions_of(evaluation, self.parsed_rules()), self.match_any)

    def contacts(self, evaluation: Evaluation | None = None) -> models.QuerySet[Contact]:
        return Contact.objects.filter(self.condition(evaluation or Evaluation()))

    def count(self) -> int:
        return self.contacts().count()

    def frozen(self) -> dict[str, Any]:
        """What an approval of a campaign using it binds: its rules, not who matched."""
        return {"id": self.pk, "match_any": self.match_any, "rules": list(self.rules)}

    def used_by(self) -> list[int]:
        """Ids of the campaigns that target or exclude it."""
        targeting = self.campaigns.values_list("pk", flat=True)  # type: ignore[attr-defined]
        excluding = self.excluded_from.values_list("pk", flat=True)  # type: ignore[attr-defined]
        return sorted({*targeting, *excluding})

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        used = self.used_by()
        if used:
            raise SegmentInUse(in_use_text(self, used))
        return super().delete(*args, **kwargs)

    def save_by(self, by: Any) -> int:
        """Save a new segment or an edit made by `by` (an author of the campaigns it changes),
        audited. Every door (dashboard, admin, CLI) saves through here. Returns how many
        submitted or approved campaigns now wait for approval again (see save_edit)."""
        created = self.pk is None
        with transaction.atomic():
            if created:
                self.created_by = self.created_by or _user_or_none(by)
            waiting = self.save_edit(by)
            AuditEvent.record(
                AuditEvent.Action.SEGMENT_SAVED, actor=by, obj=self, detail=self._detail(created)
            )
        return waiting

    def delete_by(self, by: Any) -> None:
        """Delete, audited; SegmentInUse (and nothing deleted) while a campaign uses it."""
        with transaction.atomic():
            Segment.objects.select_for_update().filter(pk=self.pk).exists()
            AuditEvent.record(
                AuditEvent.Action.SEGMENT_DELETED, actor=by, obj=self, detail=self._detail(False)
            )
            self.delete()

    def _detail(self, created: bool) -> dict[str, Any]:
        match = "any" if self.match_any else "all"
        return {"created": created, "name": self.name, "match": match, "rules": list(self.rules)}

    def save_edit(self, by: Any) -> int:
        """Save, counting `by` among the authors of each unfinished campaign whose approval
        the edit changes (as a template edit does). Returns how many of those were submitted
        or approved: they send to the new rules only once approved again."""
        from campaigns.models import Campaign

        if self.pk is None:
            self.save()
            return 0
        using = Campaign.objects.filter(Q(segments=self) | Q(exclude_segments=self)).exclude(
            status__in=Campaign.FINAL_STATUSES
        )
        using = using.distinct().select_related("provider_account", "template")
        before = {c.pk: c.compute_content_hash() for c in using}
        self.save()
        waiting = 0
        for campaign in Campaign.objects.filter(pk__in=before).select_related("template"):
            campaign.note_authors(by, before[campaign.pk])
            bound = campaign.status in (Campaign.Status.PENDING_APPROVAL, Campaign.Status.SCHEDULED)
            if bound and campaign.compute_content_hash() != before[campaign.pk]:
                waiting += 1
        return waiting


def waiting_text(waiting: int) -> str:
    """What staff are told when a segment edit sends campaigns back for approval."""
    return (
        f"{waiting} submitted or approved campaign{'s use' if waiting != 1 else ' uses'} this "
        "segment: they will not send to the new rules until an approver approves them again."
    )


def _user_or_none(by: Any) -> Any:
    return by if getattr(by, "is_authenticated", False) else None


def in_use_text(segment: Segment, campaign_ids: list[int]) -> str:
    shown = ", ".join(str(pk) for pk in campaign_ids[:10])
    more = f" and {len(campaign_ids) - 10} more" if len(campaign_ids) > 10 else ""
    return (
        f"Segment {segment.name!r} is used by campaign{'s' if len(campaign_ids) > 1 else ''} "
        f"{shown}{more}: it cannot be deleted while they use it."
    )
