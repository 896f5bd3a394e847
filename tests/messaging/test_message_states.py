"""One state machine per model: Message moves only through its QuerySet, checked by one table.

The first tests read the product's source: no `.update(...)` may write a status
outside the model modules that own the state machines. The rest run each move
against the real database and check it takes exactly the from-statuses the table
allows, and leaves every other row as it was.
"""

import ast
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from messaging.models import Message, MessageQuerySet, ProviderAccount
from tests.conftest import phone

M = Message.Status
ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("config", "audit", "contacts", "messaging", "campaigns", "dashboard", "bench")
#: The modules whose models own a state machine and so may write `status`: Message,
#: Campaign, and ImportJob (whose moves live on its own model in contacts).
OWNERS = {"messaging/models.py", "campaigns/models.py", "contacts/models.py"}
WRITES = {"update", "bulk_update"}


def _says_status(node: ast.AST) -> bool:
    """A literal that names the status column: "status" or a list/tuple holding it."""
    if isinstance(node, ast.Constant):
        return node.value == "status"
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return any(_says_status(item) for item in node.elts)
    return False


def _builds_status(node: ast.AST | None, tainted: set[str]) -> bool:
    """A dict that carries a status: {"status": ...}, dict(status=...) or a name holding one."""
    if isinstance(node, ast.Dict):
        return any(key is not None and _says_status(key) for key in node.keys)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return any(k.arg == "status" for k in node.keywords)
    return isinstance(node, ast.Name) and node.id in tainted


def _tainted_names(tree: ast.AST) -> set[str]:
    """Names that are given a status somewhere in the module: `changes = {"status": ...}`,
    `changes["status"] = ...`, `changes.update(status=...)`."""
    tainted: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and _builds_status(node.value, set()):
                    tainted.add(target.id)
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and _says_status(target.slice)
                ):
                    tainted.add(target.value.id)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.attr == "update"
            and (
                any(k.arg == "status" for k in node.keywords)
                or any(_builds_status(arg, set()) for arg in node.args)
            )
        ):
            tainted.add(node.func.value.id)
    return tainted


def status_writes(source: str) -> list[int]:
    """Lines of `source` where an `.update(...)` or `.bulk_update(...)` call writes a status."""
    tree = ast.parse(source)
    tainted = _tainted_names(tree)
    lines = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITES
        ):
            continue
        for keyword in node.keywords:
            if keyword.arg == "status" or (
                keyword.arg is None and _builds_status(keyword.value, tainted)
            ):
                lines.append(keyword.value.lineno)
            if keyword.arg == "fields" and _says_status(keyword.value):
                lines.append(keyword.value.lineno)
        if node.func.attr == "bulk_update" and any(_says_status(arg) for arg in node.args[1:]):
            lines.append(node.lineno)
    return sorted(lines)


def product_files() -> list[Path]:
    files = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or "__pycache__" in relative.parts:
                continue
            files.append(path)
    return files


SNIPPET = """
Message.objects.filter(pk=1).update(body="")
Message.objects.filter(status="pending").update(
    body="",
    status="sent",
)
held = Message.objects.filter(
    pk=1, status="sending"
).update(
    lease_expires_at=None,
    **{"status": "failed"},
)
changes = {"updated_at": now}
changes["status"] = "failed"
Message.objects.filter(pk=1).update(**changes)
kept = {"body": ""}
Message.objects.filter(pk=1).update(**kept)
Campaign.objects.filter(pk=1).update(**dict(status="draft"))
Message.objects.bulk_update(rows, ["status", "body"])
Message.objects.bulk_update(rows, fields=("body",))
Message.objects.create(status="skipped")
"""


def test_the_source_check_finds_status_writes_in_every_shape_it_takes() -> None:
    # So the walk below cannot pass by finding nothing: multi-line calls, ** dicts,
    # a dict built up first, and bulk_update are caught; other writes are not.
    assert status_writes(SNIPPET) == [5, 11, 15, 18, 19]


def test_the_product_is_walked() -> None:
    names = {str(path.relative_to(ROOT)) for path in product_files()}
    assert {"messaging/dispatch.py", "campaigns/testsend.py", "bench/dashboard.py"} <= names
    assert not any("migrations" in name for name in names)


def test_no_status_is_written_outside_the_model_modules() -> None:
    found = []
    for path in product_files():
        relative = str(path.relative_to(ROOT))
        if relative in OWNERS:
            continue
        found += [f"{relative}:{line}" for line in status_writes(path.read_text())]
    assert found == [], "status written outside the model modules:\n" + "\n".join(found)


def test_the_table_has_every_status_and_only_final_ones_go_nowhere() -> None:
    assert set(Message.TRANSITIONS) == set(M.values)
    assert all(set(moves) <= set(M.values) for moves in Message.TRANSITIONS.values())
    final = {status for status, moves in Message.TRANSITIONS.items() if not moves}
    assert final == set(Message.FINAL_STATUSES)


# Each move, the statuses it takes rows from, the status it leaves them in.
LATER = timezone.now() + timedelta(hours=1)
Move = Callable[[MessageQuerySet], int]
MOVES: list[tuple[str, Move, set[str], str]] = [
    ("mark_sending", lambda rows: rows.mark_sending(uuid.uuid4(), LATER), {M.PENDING}, M.SENDING),
    ("mark_sent", lambda rows: rows.mark_sent("batch-1", at=timezone.now()), {M.SENDING}, M.SENT),
    ("retry_later", lambda rows: rows.retry_later(LATER, "BUSY", "busy"), {M.SENDING}, M.PENDING),
    ("release", lambda rows: rows.release(), {M.SENDING}, M.PENDING),
    ("mark_in_doubt", lambda rows: rows.mark_in_doubt("T", "timeout"), {M.SENDING}, M.IN_DOUBT),
    ("mark_failed", lambda rows: rows.mark_failed("REJECTED", "no"), {M.SENDING}, M.FAILED),
    ("give_up", lambda rows: rows.give_up(), {M.PENDING}, M.FAILED),
    ("skip", lambda rows: rows.skip(Message.SkipReason.OPTED_OUT), {M.PENDING}, M.SKIPPED),
    ("skip_at_send", lambda rows: rows.skip_at_send("opted_out"), {M.SENDING}, M.SKIPPED),
    ("cancel_unsent", lambda rows: rows.cancel_unsent(), {M.PENDING}, M.CANCELLED),
    ("settle_found", lambda rows: rows.settle_found("p-1", LATER), {M.IN_DOUBT}, M.SENT),
    ("resend", lambda rows: rows.resend(), {M.IN_DOUBT}, M.PENDING),
    ("report sent", lambda rows: rows.record_report(M.SENT, LATER), {M.SENT, M.IN_DOUBT}, M.SENT),
    (
        "report delivered",
        lambda rows: rows.record_report(M.DELIVERED, LATER),
        {M.SENT, M.IN_DOUBT},
        M.DELIVERED,
    ),
    (
        "report failed",
        lambda rows: rows.record_report(M.FAILED, LATER, "UNDELIV", "undelivered"),
        {M.SENT, M.IN_DOUBT},
        M.FAILED,
    ),
]


@pytest.fixture
def one_of_each(locmem: ProviderAccount) -> dict[str, Message]:
    """A message in every status, all of them due, held and with a lease that ran out."""
    ran_out = timezone.now() - timedelta(minutes=1)
    return {
        status: Message.objects.create(
            provider_account=locmem,
            phone=phone(i),
            body="hello",
            client_ref=Message.new_client_ref(),
            status=status,
            attempts=1,
            claim_token=uuid.uuid4(),
            lease_expires_at=ran_out,
            next_attempt_at=ran_out,
        )
        for i, status in enumerate(M.values)
    }


def statuses() -> dict[str, str]:
    return {m.client_ref: m.status for m in Message.objects.all()}


@pytest.mark.parametrize(
    ("move", "sources", "to"), [m[1:] for m in MOVES], ids=[m[0] for m in MOVES]
)
def test_each_move_takes_only_the_statuses_the_table_allows(
    one_of_each: dict[str, Message], move: Move, sources: set[str], to: str
) -> None:
    assert all(to in Message.TRANSITIONS[source] for source in sources)
    assert move(Message.objects.all()) == len(sources)
    expected = {m.client_ref: to if s in sources else s for s, m in one_of_each.items()}
    assert statuses() == expected


def test_every_move_in_the_table_has_a_method() -> None:
    made = {(source, to) for _name, _move, sources, to in MOVES for source in sources}
    listed = {(source, to) for source, moves in Message.TRANSITIONS.items() for to in moves}
    assert made == listed


def test_a_move_the_table_does_not_list_is_refused_before_anything_is_written(
    one_of_each: dict[str, Message],
) -> None:
    before = statuses()
    with pytest.raises(ValueError, match="from delivered to pending"):
        Message.objects.all()._move(M.PENDING, [M.DELIVERED])
    with pytest.raises(ValueError, match="from delivered to sent"):
        Message.objects.all()._move(M.SENT, [M.IN_DOUBT, M.DELIVERED])
    with pytest.raises(ValueError, match="from nowhere to pending"):
        Message.objects.all()._move(M.PENDING, [])
    with pytest.raises(ValueError, match="report cannot move a message to pending"):
        Message.objects.all().record_report(M.PENDING, timezone.now())
    assert statuses() == before


def test_a_delivered_message_is_neither_sent_again_nor_put_back_to_pending(
    one_of_each: dict[str, Message],
) -> None:
    delivered = Message.objects.filter(pk=one_of_each[M.DELIVERED].pk)
    for move in (
        delivered.release,
        delivered.resend,
        lambda: delivered.retry_later(LATER, "BUSY", "busy"),
        lambda: delivered.mark_sent("batch-1", at=timezone.now()),
        lambda: delivered.settle_found("p-1", LATER),
        lambda: delivered.record_report(M.SENT, timezone.now()),
        lambda: delivered.record_report(M.FAILED, timezone.now()),
    ):
        assert move() == 0
    assert delivered.get().status == M.DELIVERED


def test_a_cancelled_message_cannot_be_claimed(one_of_each: dict[str, Message]) -> None:
    claimed = Message.objects.all().claim(10)
    assert [m.pk for m in claimed] == [one_of_each[M.PENDING].pk]
    cancelled = Message.objects.get(pk=one_of_each[M.CANCELLED].pk)
    assert (cancelled.status, cancelled.attempts) == (M.CANCELLED, 1)


def test_only_sending_rows_whose_lease_ran_out_go_in_doubt(
    one_of_each: dict[str, Message], locmem: ProviderAccount
) -> None:
    still_held = Message.objects.create(
        provider_account=locmem,
        phone=phone(100),
        body="hello",
        client_ref="held",
        status=M.SENDING,
        lease_expires_at=LATER,
    )
    assert Message.objects.mark_expired_leases_in_doubt() == 1
    gone = Message.objects.get(pk=one_of_each[M.SENDING].pk)
    assert (gone.status, gone.error_code) == (M.IN_DOUBT, "LEASE_EXPIRED")
    still_held.refresh_from_db()
    assert still_held.status == M.SENDING


def _row(message: Message) -> Message:
    return Message.objects.get(pk=message.pk)


def test_sent_keeps_the_batch_and_time_and_clears_the_lease_and_error(
    one_of_each: dict[str, Message],
) -> None:
    at = timezone.now()
    sending = one_of_each[M.SENDING]
    Message.objects.filter(pk=sending.pk).update(error_code="BUSY", error_message="busy")
    Message.objects.filter(pk=sending.pk).mark_sent("batch-7", at=at)
    row = _row(sending)
    assert (row.provider_batch_id, row.sent_at, row.updated_at) == ("batch-7", at, at)
    assert (row.lease_expires_at, row.error_code, row.error_message) == (None, "", "")
    assert row.claim_token == sending.claim_token


def test_a_row_given_back_has_its_attempt_and_claim_undone(
    one_of_each: dict[str, Message],
) -> None:
    sending = one_of_each[M.SENDING]
    Message.objects.filter(pk=sending.pk).release(next_attempt_at=LATER)
    row = _row(sending)
    assert (row.status, row.attempts, row.claim_token, row.lease_expires_at) == (
        M.PENDING,
        0,
        None,
        None,
    )
    assert row.next_attempt_at == LATER


def test_a_retry_counts_its_attempt_and_keeps_the_error(one_of_each: dict[str, Message]) -> None:
    sending = one_of_each[M.SENDING]
    Message.objects.filter(pk=sending.pk).retry_later(LATER, "THROTTLED", "x" * 600)
    row = _row(sending)
    assert (row.status, row.attempts, row.next_attempt_at) == (M.PENDING, 1, LATER)
    assert (row.error_code, len(row.error_message), row.lease_expires_at) == (
        "THROTTLED",
        500,
        None,
    )


def test_in_doubt_keeps_the_request_ref_to_look_it_up_by(one_of_each: dict[str, Message]) -> None:
    sending = one_of_each[M.SENDING]
    Message.objects.filter(pk=sending.pk).mark_in_doubt("TIMEOUT", "no answer", request_ref="r-9")
    row = _row(sending)
    assert (row.status, row.request_ref, row.error_code) == (M.IN_DOUBT, "r-9", "TIMEOUT")


def test_giving_up_a_test_send_keeps_its_last_error_unless_given_one(
    one_of_each: dict[str, Message], locmem: ProviderAccount
) -> None:
    pending = one_of_each[M.PENDING]
    Message.objects.filter(pk=pending.pk).update(error_code="BUSY", error_message="busy")
    Message.objects.filter(pk=pending.pk).give_up()
    assert (_row(pending).status, _row(pending).error_code) == (M.FAILED, "BUSY")
    other = Message.objects.create(
        provider_account=locmem, phone=phone(101), body="hi", client_ref="other"
    )
    Message.objects.filter(pk=other.pk).give_up("ACCOUNT_SUSPENDED", "suspended")
    assert (_row(other).error_code, _row(other).error_message) == ("ACCOUNT_SUSPENDED", "suspended")


def test_settling_a_doubt_takes_the_providers_id_and_resending_makes_it_due_now(
    one_of_each: dict[str, Message], locmem: ProviderAccount
) -> None:
    found = one_of_each[M.IN_DOUBT]
    sent_at: datetime = LATER
    Message.objects.filter(pk=found.pk).settle_found("prov-1", sent_at=sent_at)
    row = _row(found)
    assert (row.status, row.provider_message_id, row.sent_at) == (M.SENT, "prov-1", sent_at)
    missing = Message.objects.create(
        provider_account=locmem,
        phone=phone(102),
        body="hi",
        client_ref="missing",
        status=M.IN_DOUBT,
        claim_token=uuid.uuid4(),
        next_attempt_at=LATER,
    )
    Message.objects.filter(pk=missing.pk).resend()
    row = _row(missing)
    assert (row.status, row.claim_token, row.error_code) == (M.PENDING, None, "NOT_AT_PROVIDER")
    assert row.next_attempt_at <= timezone.now()


def test_a_skip_for_an_erased_number_leaves_updated_at_alone(
    one_of_each: dict[str, Message],
) -> None:
    pending = one_of_each[M.PENDING]
    Message.objects.filter(pk=pending.pk).skip(Message.SkipReason.OPTED_OUT)
    row = _row(pending)
    assert (row.status, row.skip_reason, row.updated_at) == (
        M.SKIPPED,
        Message.SkipReason.OPTED_OUT,
        pending.updated_at,
    )


def test_a_report_dates_delivery_and_keeps_the_providers_error(
    one_of_each: dict[str, Message],
) -> None:
    at = timezone.now() - timedelta(seconds=5)
    sent, doubtful = one_of_each[M.SENT], one_of_each[M.IN_DOUBT]
    Message.objects.filter(pk=sent.pk).record_report(M.DELIVERED, occurred_at=at)
    Message.objects.filter(pk=doubtful.pk).record_report(M.FAILED, at, "UNDELIV", "unknown")
    assert (_row(sent).status, _row(sent).delivered_at) == (M.DELIVERED, at)
    row = _row(doubtful)
    assert (row.status, row.delivered_at, row.error_code) == (M.FAILED, None, "UNDELIV")
