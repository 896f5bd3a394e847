"""Demo data for `make run`: staff logins, ~200 contacts, a segment, a template, a draft
campaign and a few replies in the inbox (the simulator adds more as campaigns deliver).

Safe to run on every start: it creates what is missing and gives the three demo
users fresh random passwords, which it prints (nothing else stores them).
"""

import secrets
from typing import Any

from django.contrib.auth.models import Group as Role
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from campaigns.models import Campaign, MessageTemplate
from campaigns.segments import Segment
from contacts.models import Contact, Group, OptOut, Tag
from messaging.inbound import Incoming, receive
from messaging.models import InboundMessage, ProviderAccount

FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Ema", "Farid", "Grace", "Hugo", "Ines", "Jon"]
LAST_NAMES = ["Adeyemi", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes"]
DEMO_CONTACTS = 200
# +44 7911 1xxxxx: a UK mobile range libphonenumber accepts (unlike Ofcom's 07700 900xxx).
FIRST_NUMBER = 447911100000

DEMO_REPLY_RATE = 0.1
#: (contact number, text); -1: a number that is no contact.
DEMO_REPLIES = (
    (11, "What time do you open on Saturday?"),
    (12, "Arrêt"),
    (13, "HELP"),
    (14, "please stop texting me"),
    (-1, "Is this the Leeds shop? Do you have the blue one in stock?"),
)
UNKNOWN_NUMBER = "+447911999123"

DEMO_BODY = (
    "Hi {{first_name|there}}, our spring sale starts today: 20% off everything at "
    "https://shop.example.com/spring Reply STOP to opt out."
)


class Command(BaseCommand):
    help = "Load demo data (idempotent) and print the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            logins = self._users()
            account = self._provider()
            newsletter = self._contacts()
            self._segment(logins["marketer"][0])
            self._campaign(account, newsletter, logins["marketer"][0])
            self._replies(account)
        self.stdout.write(
            self.style.SUCCESS("Demo data ready. Logins (fresh passwords each start):")
        )
        for role, (user, password) in logins.items():
            self.stdout.write(f"  {role:<9} {user.username} / {password}")

    def _users(self) -> dict[str, tuple[User, str]]:
        specs: list[tuple[str, str, str | None]] = [
            ("admin", "admin", None),
            ("marketer", "marketer", "Marketers"),
            ("approver", "approver", "Approvers"),
        ]
        logins = {}
        for role, username, group_name in specs:
            user, _ = User.objects.get_or_create(username=username)
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.is_staff = True
            user.is_superuser = group_name is None
            user.email = f"{username}@example.com"
            user.save()
            if group_name:
                user.groups.add(Role.objects.get(name=group_name))
            logins[role] = (user, password)
        return logins

    def _provider(self) -> ProviderAccount:
        account, _ = ProviderAccount.objects.get_or_create(
            name="simulator",
            defaults={
                "backend": ProviderAccount.Backend.SIMULATOR,
                "sender": "Herald",
                "rate_limit": 50,
                "price_per_segment": "0.03500",
                "options": {
                    "delivery_delay": 20,
                    "failure_rate": 0.05,
                    "reply_rate": DEMO_REPLY_RATE,
                    "seed": "demo",
                },
            },
        )
        if "reply_rate" not in account.options:  # a demo database from before replies
            account.options = {**account.options, "reply_rate": DEMO_REPLY_RATE}
            account.save(update_fields=["options"])
        return account

    def _replies(self, account: ProviderAccount) -> None:
        """A few replies of each kind, handled as if the simulator had delivered them."""
        if InboundMessage.objects.exists():
            return
        for i, body in DEMO_REPLIES:
            sender = f"+{FIRST_NUMBER + i}" if i >= 0 else UNKNOWN_NUMBER
            receive(
                account,
                Incoming(channel="sms", phone=sender, body=body, provider_message_id=f"demo-{i}"),
            )

    def _contacts(self) -> Group:
        newsletter, _ = Group.objects.get_or_create(
            name="Newsletter", defaults={"description": "Signed up on the website"}
        )
        customers, _ = Group.objects.get_or_create(
            name="Customers", defaults={"description": "Bought something in the last year"}
        )
        vip, _ = Tag.objects.get_or_create(name="vip")
        for i in range(DEMO_CONTACTS):
            contact, created = Contact.objects.get_or_create(
                phone=f"+{FIRST_NUMBER + i}",
                defaults={
                    "first_name": FIRST_NAMES[i % len(FIRST_NAMES)],
                    "last_name": LAST_NAMES[i % len(LAST_NAMES)],
                    "email": f"contact{i}@example.com",
                    "attributes": {
                        "city": ["London", "Leeds", "Bristol"][i % 3],
                        "plan": ["gold", "silver", "bronze", "silver"][i % 4],
                    },
                    "consent_source": "demo",
                },
            )
            if created:
                # The first 60 are in both groups: a campaign to both still sends once.
                if i < 120:
                    contact.groups.add(newsletter)
                if i < 60 or i >= 120:
                    contact.groups.add(customers)
                if i % 10 == 0:
                    contact.tags.add(vip)
        for i in (3, 7):
            OptOut.objects.get_or_create(
                phone=f"+{FIRST_NUMBER + i}",
                channel="sms",
                defaults={"source": OptOut.Source.MANUAL},
            )
        return newsletter

    def _segment(self, marketer: User) -> None:
        if not Segment.objects.filter(name="Gold customers in Leeds").exists():
            segment = Segment(
                name="Gold customers in Leeds",
                rules=["attr.plan = gold", "attr.city = Leeds", "group = Customers"],
                created_by=marketer,
            )
            segment.full_clean()
            segment.save()

    def _campaign(self, account: ProviderAccount, newsletter: Group, marketer: User) -> None:
        template, _ = MessageTemplate.objects.get_or_create(
            name="Spring sale", defaults={"body": DEMO_BODY}
        )
        if Campaign.objects.exists():
            return
        campaign = Campaign.objects.create(
            name="Spring sale announcement",
            provider_account=account,
            template=template,
            created_by=marketer,
        )
        campaign.groups.add(newsletter)
