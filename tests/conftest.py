import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import Group as Role
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection

import messaging
from campaigns.models import Campaign, TestNumber
from contacts.models import Contact, Group
from messaging.models import ProviderAccount
from messaging.webhooks.base import forget_accounts
from tests.fakegateway import FakeGateway

# Valid UK mobiles (libphonenumber rejects Ofcom's 07700 900xxx drama range).
FIRST_NUMBER = 447911200000


def phone(i: int) -> str:
    return f"+{FIRST_NUMBER + i}"


def own_test_number(user: User, number: str, label: str = "mobile") -> TestNumber:
    """Register `number` as one of `user`'s test numbers, as staff would in the admin."""
    return TestNumber.objects.create(user=user, phone=number, label=label)


def reschedule(campaign: Campaign, at: datetime) -> None:
    """Move an approved campaign's start, as if the clock had moved on to it.

    The schedule is part of what an approval binds, so its hash moves with it: an
    approved campaign whose schedule changes in any other way is held for approval again.
    """
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=at)
    campaign.refresh_from_db()
    Campaign.objects.filter(pk=campaign.pk).update(content_hash=campaign.compute_content_hash())
    campaign.refresh_from_db()


@pytest.fixture(autouse=True)
def _empty_outbox() -> None:
    messaging.outbox.clear()


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Row ids repeat between tests: nothing cached by one may be read by the next."""
    cache.clear()
    forget_accounts()


@pytest.fixture(autouse=True)
def _kept_counts_agree(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the database: each campaign's kept counts equal a fresh
    count of its messages (messaging.counts), whatever the test did to them."""
    uses_db = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
    } & set(request.fixturenames)
    if not uses_db:
        yield
        return
    request.getfixturevalue("db")  # set up first, so torn down after this check
    yield
    from campaigns.models import Campaign
    from messaging.counts import differences

    wrong = differences(Campaign.objects.values_list("pk", flat=True))
    assert not wrong, f"kept counts (kept, fresh) differ from the messages: {wrong}"


@pytest.fixture
def make_user(db: Any) -> Callable[..., User]:
    def make(username: str, *roles: str) -> User:
        user = User.objects.create_user(username, password="pw-" + username, is_staff=True)
        user.groups.add(*Role.objects.filter(name__in=roles))
        return user

    return make


@pytest.fixture
def marketer(make_user: Callable[..., User]) -> User:
    return make_user("mia", "Marketers")


@pytest.fixture
def approver(make_user: Callable[..., User]) -> User:
    return make_user("arno", "Approvers")


@pytest.fixture
def simulator(db: Any) -> ProviderAccount:
    return ProviderAccount.objects.create(
        name="sim",
        backend=ProviderAccount.Backend.SIMULATOR,
        sender="Herald",
        price_per_segment="0.03000",
        options={"delivery_delay": 0, "seed": "tests"},
    )


@pytest.fixture
def locmem(db: Any) -> ProviderAccount:
    return ProviderAccount.objects.create(name="mem", backend=ProviderAccount.Backend.LOCMEM)


#: Credentials the fake gateway accepts, per backend.
GATEWAY_CREDENTIALS = {
    "buzzbip": {"username": "herald", "password": "secret"},
    "bulksmsrates": {
        "api_key": "bsms_test_key",
        "api_secret": "sk_test_secret",
        "webhook_secret": "whsec_test",
    },
    "bwatmesaj": {"api_token": "13|testtoken"},
}


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    """The three providers' fake, on a loopback port of its own."""
    with FakeGateway() as fake:
        yield fake


@pytest.fixture
def make_account(db: Any, gateway: FakeGateway) -> Callable[..., ProviderAccount]:
    """A provider account of a real backend, pointed at the fake gateway."""

    def make(
        backend: str, *, name: str = "", rate_limit: float = 1000, **options: Any
    ) -> ProviderAccount:
        account = ProviderAccount(
            name=name or backend,
            backend=backend,
            base_url=gateway.url,
            sender="Herald",
            rate_limit=rate_limit,
            options={"read_timeout": 2, **options},
        )
        account.set_credentials(GATEWAY_CREDENTIALS[backend])
        account.save()
        return account

    return make


@pytest.fixture
def make_contacts(db: Any) -> Callable[..., list[Contact]]:
    def make(count: int, *groups: Group, start: int = 0) -> list[Contact]:
        contacts = []
        for i in range(start, start + count):
            contact = Contact.objects.create(phone=phone(i), first_name=f"Name{i}")
            contact.groups.add(*groups)
            contacts.append(contact)
        return contacts

    return make


@pytest.fixture
def make_campaign(db: Any, marketer: User) -> Callable[..., Campaign]:
    def make(account: ProviderAccount, *groups: Group, body: str = "Hi {{first_name}}") -> Campaign:
        campaign = Campaign.objects.create(
            name="Spring", provider_account=account, body=body, created_by=marketer
        )
        campaign.groups.add(*groups)
        return campaign

    return make


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    on_postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    if on_postgres or not any(item.get_closest_marker("postgres") for item in items):
        return
    if os.environ.get("HERALD_REQUIRE_POSTGRES"):
        raise pytest.UsageError("HERALD_REQUIRE_POSTGRES is set but DATABASE_URL is not PostgreSQL")
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    for item in items:
        if item.get_closest_marker("postgres"):
            item.add_marker(skip)


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"
