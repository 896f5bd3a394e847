"""A second worker process for the rate-limit tests: sends single messages through one account.

    python -m tests.messaging.rate_limit_worker ACCOUNT COUNT TAG

Runs with the environment it is given (DJANGO_SETTINGS_MODULE, DATABASE_URL of
the test database) and prints how many messages the provider accepted.
"""

import sys

import django


def main(account_name: str, count: int, tag: str) -> None:
    django.setup()
    from messaging.models import Message, ProviderAccount

    account = ProviderAccount.objects.get(name=account_name)
    messages = [
        Message(
            provider_account=account,
            phone=f"+4479112{i:05d}",
            sender=account.sender,
            body=f"{tag} {i}",
            client_ref=f"{tag}-{i}",
        )
        for i in range(count)
    ]
    results = account.get_backend().send_messages(messages)
    print(sum(result.accepted for result in results))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
