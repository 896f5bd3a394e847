"""A hypothesis state machine driving one real Campaign row through random actions.

The expected behaviour is written out here from DESIGN.md ("Campaign states"),
not imported from campaigns.models, and checked against the database after every
step: status, the transition log, who submitted and approved, the messages.

Each example runs inside a savepoint of the test transaction that is rolled
back in teardown, so every example starts from a fresh draft. A failure prints
the shortest sequence of steps hypothesis finds; against a database, shrinking
it can take a few minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

import messaging
from campaigns.models import Campaign, CampaignTransition, TransitionNotAllowed
from campaigns.sending import dispatch_batch, materialise, run_campaign
from contacts.models import Contact, Group
from messaging.models import Message, ProviderAccount

# The model, from DESIGN.md. Plain strings on purpose: not Campaign.Status.
DRAFT = "draft"
PENDING = "pending_approval"
SCHEDULED = "scheduled"
SENDING = "sending"
PAUSED = "paused"
COMPLETED = "completed"
CANCELLED = "cancelled"
STATUSES = {DRAFT, PENDING, SCHEDULED, SENDING, PAUSED, COMPLETED, CANCELLED}
FINAL = {COMPLETED, CANCELLED}

#: action (as logged in CampaignTransition.action) -> {from status: to status}
MOVES: dict[str, dict[str, str]] = {
    "submit": {DRAFT: PENDING},
    "approve": {PENDING: SCHEDULED},
    "reject": {PENDING: DRAFT},
    "edit": {PENDING: DRAFT, SCHEDULED: DRAFT},
    "start": {SCHEDULED: SENDING},
    "pause": {SENDING: PAUSED},
    "resume": {PAUSED: SENDING},
    "cancel": {s: CANCELLED for s in (DRAFT, PENDING, SCHEDULED, SENDING, PAUSED)},
    "complete": {SENDING: COMPLETED},
}

#: Who acts. `bea` is a marketer who may also approve (so self-approval can be tried);
#: `mia` may not approve; None is the engine.
ROLES: dict[str, tuple[str, ...]] = {
    "mia": ("Marketers",),
    "bea": ("Marketers", "Approvers"),
    "arno": ("Approvers",),
    "ana": ("Approvers",),
}
APPROVERS = {"bea", "arno", "ana"}
PEOPLE = st.sampled_from(sorted(ROLES))
ANYONE = st.sampled_from([*sorted(ROLES), None])

GOOD_BODIES = ("Hi {{first_name}}", "Sale today!")
BAD_BODIES = ("", "   ", "Hi {{nickname}}")  # no body, blank body, a variable nobody has
AUDIENCE_SIZE = 2

#: The steps walk_part_of_the_happy_path takes, as far as its drawn depth.
HAPPY_PATH = (
    "submit",
    "approve",
    "start",
    "complete",  # too early: nothing built yet
    "materialise",
    "complete",  # too early: messages pending
    "pause",
    "resume",
    "dispatch",
    "complete",
)

Refusal = type[Exception]
REFUSALS: tuple[Refusal, ...] = (TransitionNotAllowed, PermissionDenied, ValidationError)


@dataclass(frozen=True)
class World:
    """What every example shares; created once per test, outside the savepoints."""

    users: dict[str, User]
    account: ProviderAccount
    group: Group


def new_draft(world: World) -> Campaign:
    campaign = Campaign.objects.create(
        name="Spring",
        provider_account=world.account,
        body=GOOD_BODIES[0],
        created_by=world.users["mia"],
    )
    campaign.groups.add(world.group)
    return campaign


@dataclass(frozen=True)
class Observed:
    status: str
    submitted_by: int | None
    materialised: bool
    log_rows: int
    unfinished: bool


@dataclass(frozen=True)
class Expect:
    """Either the status an action leads to, or the refusals it may meet (any of them)."""

    target: str | None = None
    refusals: tuple[Refusal, ...] = ()


def outcome(
    moves: dict[str, str], status: str, refusals: list[Refusal], nothing_to_do: Refusal | None
) -> Expect:
    """Accepted only when the move exists and no other reason to refuse applies."""
    target = moves.get(status)
    if target is None and nothing_to_do is not None:
        refusals.append(nothing_to_do)
    if target is None or refusals:
        return Expect(refusals=tuple(dict.fromkeys(refusals)))
    return Expect(target=target)


class CampaignMachine(RuleBasedStateMachine):
    world: ClassVar[World]

    #: Python instances loaded at some earlier step; by the time they are used, stale.
    copies: Bundle[Campaign] = Bundle("copies")

    def __init__(self) -> None:
        super().__init__()
        self.savepoint = transaction.atomic()
        self.savepoint.__enter__()
        messaging.outbox.clear()
        self.pk = new_draft(self.world).pk
        # The model.
        self.status = DRAFT
        self.submitted_by: str | None = None  # the last submitter (a rejection keeps it)
        self.body_ok = True
        self.has_audience = True
        self.materialised = False
        self.unfinished = False  # messages pending, sending or in doubt
        self.log_count = 0
        self.log_replayed = 0  # rows of the log already replayed by check_log
        self.reached_final: str | None = None
        self.steps = 0
        self.wander = 0  # steps before the actions that end a campaign are enabled

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.savepoint.__exit__(None, None, None)

    # Helpers.

    def fresh(self) -> Campaign:
        return Campaign.objects.select_related("provider_account").get(pk=self.pk)

    def instance(self, copy: Campaign | None) -> Campaign:
        return self.fresh() if copy is None else copy

    def user(self, name: str | None) -> User | None:
        return None if name is None else self.world.users[name]

    def pk_of(self, name: str | None) -> int | None:
        user = self.user(name)
        return None if user is None else user.pk

    def log(self) -> list[CampaignTransition]:
        return list(CampaignTransition.objects.filter(campaign_id=self.pk).order_by("pk"))

    def attempt(
        self, action: str, actor: str | None, expect: Expect, call: Callable[[], bool | None]
    ) -> bool:
        """Run one state-machine method and check it did exactly what the model says."""
        before = self.status
        try:
            result = call()
        except REFUSALS as exc:
            assert expect.target is None, (
                f"{action} by {actor} from {before} should lead to {expect.target}: {exc!r}"
            )
            assert isinstance(exc, expect.refusals), (
                f"{action} by {actor} from {before} refused with {exc!r}, "
                f"expected one of {expect.refusals}"
            )
            self.assert_unchanged(before)
            return False
        if result is False:  # start() and complete_if_done() say no by returning False
            assert expect.target is None, f"{action} from {before} returned False"
            self.assert_unchanged(before)
            return False
        assert expect.target is not None, (
            f"{action} by {actor} from {before} was accepted; expected {expect.refusals}"
        )
        written = self.log_size() - self.log_count
        assert written == 1, f"{action} from {before} wrote {written} log rows"
        row = CampaignTransition.objects.filter(campaign_id=self.pk).latest("pk")
        assert (row.action, row.from_status, row.to_status, row.by_id) == (
            action,
            before,
            expect.target,
            self.pk_of(actor),
        )
        assert self.db_status() == expect.target
        self.status = expect.target
        self.log_count += 1
        return True

    def observe(self) -> Observed:
        """The row's status and the rest the model predicts, in one query."""
        unfinished = Message.objects.filter(
            campaign_id=OuterRef("pk"), status__in=Message.UNFINISHED_STATUSES
        )
        status, submitted_by, materialised_at, log_rows, has_unfinished = (
            Campaign.objects.filter(pk=self.pk)
            .annotate(log_rows=Count("transitions"), has_unfinished=Exists(unfinished))
            .values_list("status", "submitted_by", "materialised_at", "log_rows", "has_unfinished")
            .get()
        )
        return Observed(status, submitted_by, materialised_at is not None, log_rows, has_unfinished)

    def db_status(self) -> str:
        return self.observe().status

    def log_size(self) -> int:
        return self.observe().log_rows

    def assert_unchanged(self, before: str) -> None:
        seen = self.observe()
        assert seen.status == before, "a refused action changed the status"
        assert seen.log_rows == self.log_count, "a refused action wrote to the log"

    @initialize(
        target=copies,
        depth=st.integers(0, len(HAPPY_PATH)),
        submitter=PEOPLE,
        approver=PEOPLE,
        wander=st.integers(0, 20),
        draft_body=st.sampled_from(GOOD_BODIES + BAD_BODIES),
    )
    def walk_part_of_the_happy_path(
        self, depth: int, submitter: str, approver: str, wander: int, draft_body: str
    ) -> MultipleResults[Campaign]:
        """Start some examples further along, through the same checked rules.

        A copy of the campaign is kept from before the walk and after each step, for
        the rules to act on once it is out of date.

        The approver is anyone, the submitter included: self-approval and
        approval by a marketer are tried here too, and stop the walk in pending.

        Cancel and the engine's full run end a campaign for good, and would
        otherwise leave most steps of most examples knocking on a closed door:
        `wander` holds them back for a few steps.
        """
        self.wander = wander
        kept = [self.fresh()]
        if depth == 0:  # a draft that stays one is edited after the copy was kept
            self.edit_draft_body(draft_body)
        for step in HAPPY_PATH[:depth]:
            if step == "submit":
                self.submit(submitter, None)
            elif step == "approve":
                self.approve(approver, None, "")
            elif step == "start":
                self.engine_start(None)
            elif step == "materialise" and self.status == SENDING:
                self.engine_materialise()
            elif step == "pause":
                self.pause(submitter, None, "")
            elif step == "resume":
                self.resume(submitter, None)
            elif step == "dispatch":
                self.engine_dispatch()
            elif step == "complete":
                self.engine_complete_if_done(None)
            kept.append(self.fresh())
        return multiple(*kept)

    # People's actions. `copy` None: a freshly loaded instance; else one loaded earlier.

    @rule(target=copies)
    def load_a_copy(self) -> Campaign:
        return self.fresh()

    @rule(actor=PEOPLE, copy=st.none() | copies)
    def submit(self, actor: str, copy: Campaign | None) -> None:
        campaign = self.instance(copy)
        refusals: list[Refusal] = []
        # What is checked is the row, not the copy's idea of it.
        if not (self.body_ok and self.has_audience):
            refusals.append(ValidationError)
        expect = outcome(MOVES["submit"], self.status, refusals, TransitionNotAllowed)
        if self.attempt("submit", actor, expect, lambda: campaign.submit(by=self.user(actor))):
            self.submitted_by = actor
            row = self.fresh()
            assert row.submitted_by_id == self.pk_of(actor)
            assert row.rejection_reason == ""

    @rule(actor=ANYONE, copy=st.none() | copies, note=st.sampled_from(["", "Looks good"]))
    def approve(self, actor: str | None, copy: Campaign | None, note: str) -> None:
        campaign = self.instance(copy)
        row = campaign if copy is None else self.fresh()
        refusals: list[Refusal] = []
        if actor not in APPROVERS:
            refusals.append(PermissionDenied)
        if actor is not None and self.pk_of(actor) in (
            row.submitted_by_id,
            campaign.submitted_by_id,
        ):
            refusals.append(PermissionDenied)  # self-approval, by the record or the copy
        if campaign.submitted_by_id != row.submitted_by_id:
            refusals.append(TransitionNotAllowed)  # the copy shows another submission
        if campaign.content_hash != row.content_hash:
            refusals.append(TransitionNotAllowed)  # the copy shows other content
        expect = outcome(MOVES["approve"], self.status, refusals, TransitionNotAllowed)
        submitter = row.submitted_by_id
        accepted = self.attempt(
            "approve", actor, expect, lambda: campaign.approve(by=self.user(actor), note=note)
        )
        if actor is not None and self.pk_of(actor) == submitter:
            assert not accepted, "self-approval was accepted"
        if accepted:
            row = self.fresh()
            assert actor in APPROVERS
            assert row.approved_by_id == self.pk_of(actor) != row.submitted_by_id
            assert self.log()[-1].note == note

    @rule(
        actor=ANYONE,
        copy=st.none() | copies,
        reason=st.sampled_from(["Tone it down", "Price is wrong", "", "  "]),
    )
    def reject(self, actor: str | None, copy: Campaign | None, reason: str) -> None:
        campaign = self.instance(copy)
        refusals: list[Refusal] = []
        if actor not in APPROVERS:
            refusals.append(PermissionDenied)
        if not reason.strip():
            refusals.append(ValidationError)
        expect = outcome(MOVES["reject"], self.status, refusals, TransitionNotAllowed)
        if self.attempt(
            "reject", actor, expect, lambda: campaign.reject(by=self.user(actor), reason=reason)
        ):
            row = self.fresh()
            assert row.rejection_reason == reason
            assert row.content_hash == ""

    @rule(actor=PEOPLE, copy=st.none() | copies)
    def edit_after_submit(self, actor: str, copy: Campaign | None) -> None:
        campaign = self.instance(copy)
        expect = outcome(MOVES["edit"], self.status, [], TransitionNotAllowed)
        if self.attempt(
            "edit", actor, expect, lambda: campaign.return_to_draft(by=self.user(actor))
        ):
            row = self.fresh()
            assert (row.approved_by_id, row.approved_at, row.content_hash) == (None, None, "")

    @rule(actor=ANYONE, copy=st.none() | copies, reason=st.sampled_from(["", "Typo"]))
    def pause(self, actor: str | None, copy: Campaign | None, reason: str) -> None:
        campaign = self.instance(copy)
        expect = outcome(MOVES["pause"], self.status, [], TransitionNotAllowed)
        if self.attempt(
            "pause", actor, expect, lambda: campaign.pause(by=self.user(actor), reason=reason)
        ):
            assert self.fresh().pause_reason == reason

    @rule(actor=ANYONE, copy=st.none() | copies)
    def resume(self, actor: str | None, copy: Campaign | None) -> None:
        campaign = self.instance(copy)
        expect = outcome(MOVES["resume"], self.status, [], TransitionNotAllowed)
        if self.attempt("resume", actor, expect, lambda: campaign.resume(by=self.user(actor))):
            assert self.fresh().pause_reason == ""

    @precondition(lambda self: self.steps >= self.wander or self.status in FINAL)
    @rule(actor=ANYONE, copy=st.none() | copies, reason=st.sampled_from(["", "Wrong list"]))
    def cancel(self, actor: str | None, copy: Campaign | None, reason: str) -> None:
        campaign = self.instance(copy)
        expect = outcome(MOVES["cancel"], self.status, [], TransitionNotAllowed)
        if self.attempt(
            "cancel", actor, expect, lambda: campaign.cancel(by=self.user(actor), reason=reason)
        ):
            self.unfinished = False  # pending messages are cancelled with it

    # Edits of a draft (the only state in which content may change without a transition).

    @precondition(lambda self: self.status == DRAFT)
    @rule(body=st.sampled_from(GOOD_BODIES + BAD_BODIES))
    def edit_draft_body(self, body: str) -> None:
        Campaign.objects.filter(pk=self.pk).update(body=body)
        self.body_ok = body in GOOD_BODIES

    @precondition(lambda self: self.status == DRAFT)
    @rule(present=st.booleans())
    def edit_draft_audience(self, present: bool) -> None:
        self.fresh().groups.set([self.world.group] if present else [])
        self.has_audience = present

    # The engine.

    @rule(copy=st.none() | copies)
    def engine_start(self, copy: Campaign | None) -> None:
        campaign = self.instance(copy)
        expect = outcome(MOVES["start"], self.status, [], None)
        self.attempt("start", None, expect, campaign.start)

    @precondition(lambda self: self.status == SENDING and not self.materialised)
    @rule()
    def engine_materialise(self) -> None:
        stats = materialise(self.fresh())
        assert stats["queued"] == AUDIENCE_SIZE
        self.materialised = True
        self.unfinished = True
        self.assert_unchanged(self.status)

    @rule()
    def engine_dispatch(self) -> None:
        campaign = self.fresh()
        while dispatch_batch(campaign):
            pass
        if self.status == SENDING:
            self.unfinished = False
        self.assert_unchanged(self.status)

    @rule(copy=st.none() | copies)
    def engine_complete_if_done(self, copy: Campaign | None) -> None:
        campaign = self.instance(copy)
        done = self.materialised and not self.unfinished
        # A copy loaded before the audience was built does not know it was built: it says no.
        if not done or campaign.materialised_at is None:
            expect = Expect()
        else:
            expect = outcome(MOVES["complete"], self.status, [], None)
        self.attempt("complete", None, expect, campaign.complete_if_done)

    @precondition(lambda self: self.steps >= self.wander or self.status not in (SCHEDULED, SENDING))
    @rule()
    def engine_run(self) -> None:
        """The engine's whole pass (campaigns.sending.run_campaign) on a fresh instance."""
        before = self.status
        steps: list[tuple[str, str, str]] = []
        status = before
        if status == SCHEDULED:  # no scheduled_at: due at once
            steps.append(("start", status, MOVES["start"][status]))
            status = SENDING
        if status == SENDING:
            steps.append(("complete", status, MOVES["complete"][status]))
            status = COMPLETED
            self.materialised, self.unfinished = True, False
        run_campaign(self.fresh())
        new = self.log()[self.log_count :]
        assert [(t.action, t.from_status, t.to_status, t.by_id) for t in new] == [
            (*step, None) for step in steps
        ]
        assert self.fresh().status == status
        self.status = status
        self.log_count += len(new)

    # After every step.

    @invariant()
    def matches_the_model(self) -> None:
        self.steps += 1
        seen = self.observe()
        self.check_status(seen)
        self.check_messages(seen)
        if self.log_count != self.log_replayed:  # a transition: arrived in a new state
            self.check_frozen_content()
        if seen.log_rows != self.log_replayed:
            self.check_log()
        assert seen.log_rows == self.log_count

    def check_status(self, seen: Observed) -> None:
        assert set(Campaign.Status.values) == STATUSES
        assert seen.status in STATUSES
        assert seen.status == self.status
        assert seen.submitted_by == self.pk_of(self.submitted_by)
        if self.reached_final is not None:
            assert self.status == self.reached_final, f"left {self.reached_final}"
        elif self.status in FINAL:
            self.reached_final = self.status
            self.try_every_way_out()

    def try_every_way_out(self) -> None:
        """Once, on arrival in a final state: every action, by someone who may, is refused."""
        approver = min(APPROVERS - {self.submitted_by or ""})
        self.approve(approver, None, "ok")
        self.reject(approver, None, "Tone it down")
        self.cancel("mia", None, "Again")
        self.cancel(None, None, "Again")
        self.submit("mia", None)
        self.edit_after_submit("mia", None)
        self.pause("mia", None, "")
        self.resume("mia", None)
        self.engine_start(None)
        self.engine_complete_if_done(None)
        self.engine_dispatch()
        self.engine_run()
        assert self.status == self.reached_final

    def check_messages(self, seen: Observed) -> None:
        assert seen.materialised == self.materialised
        assert seen.unfinished == self.unfinished

    def check_frozen_content(self) -> None:
        """Pending and scheduled campaigns carry the hash of the content now in the row.

        (Checked on arrival: in these states content changes only with an edit, which
        returns the campaign to draft.)
        """
        if self.status in (PENDING, SCHEDULED):
            row = self.fresh()
            assert row.content_hash == row.compute_content_hash()

    def check_log(self) -> None:
        """The log, replayed from the first row, is a path of the model to the current status."""
        users_by_pk = {user.pk: user for user in self.world.users.values()}
        log = self.log()
        assert len(log) == self.log_count
        status, submitter = DRAFT, None
        for row in log:
            assert row.from_status == status, f"log jumps from {status} to {row}"
            assert MOVES[row.action].get(row.from_status) == row.to_status, f"not a move: {row}"
            if row.action == "submit":
                submitter = row.by_id
            if row.action == "approve":
                assert row.by_id is not None
                assert users_by_pk[row.by_id].has_perm("campaigns.approve_campaign")
                assert row.by_id != submitter, "approved by its submitter"
            status = row.to_status
        assert status == self.status
        self.log_replayed = len(log)


SETTINGS = settings(
    max_examples=75,
    stateful_step_count=25,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the project
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def world(
    make_user: Callable[..., User],
    locmem: ProviderAccount,
    make_contacts: Callable[..., list[Contact]],
) -> World:
    users = {name: make_user(name, *roles) for name, roles in ROLES.items()}
    group = Group.objects.create(name="Spring list")
    make_contacts(AUDIENCE_SIZE, group)
    return World(users=users, account=locmem, group=group)


def test_random_action_sequences_follow_the_design(world: World) -> None:
    class Machine(CampaignMachine):
        pass

    Machine.world = world
    run_state_machine_as_test(Machine, settings=SETTINGS)


# Out-of-date copies, as the shortest sequences the machine knows for them.


def test_submit_of_an_out_of_date_copy_checks_the_row(world: World) -> None:
    campaign = new_draft(world)
    copy = Campaign.objects.get(pk=campaign.pk)
    Campaign.objects.filter(pk=campaign.pk).update(body="")  # the draft is emptied meanwhile
    with pytest.raises(ValidationError, match="no message body"):
        copy.submit(by=world.users["mia"])
    assert Campaign.objects.get(pk=campaign.pk).status == DRAFT


def test_approving_an_out_of_date_copy_of_other_content_is_refused(world: World) -> None:
    mia, arno = world.users["mia"], world.users["arno"]
    campaign = new_draft(world)
    campaign.submit(by=mia)
    seen_by_arno = Campaign.objects.get(pk=campaign.pk)
    campaign.return_to_draft(by=mia)
    Campaign.objects.filter(pk=campaign.pk).update(body=GOOD_BODIES[1])
    campaign.refresh_from_db()
    campaign.submit(by=mia)  # new content, same submitter
    with pytest.raises(TransitionNotAllowed):
        seen_by_arno.approve(by=arno)
    assert Campaign.objects.get(pk=campaign.pk).status == PENDING
