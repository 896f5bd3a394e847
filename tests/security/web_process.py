"""Another web process for the sign-in tests, with its own Django, on the same test database.

    python -m tests.security.web_process sign-in USERNAME PASSWORD IP... COUNT
    python -m tests.security.web_process reset EMAIL IP... COUNT

Each IP makes COUNT attempts (sign-ins, or password-reset requests); prints each answer's
status code. Runs with the environment it is given (DJANGO_SETTINGS_MODULE, DATABASE_URL).
"""

import sys

import django


def main(kind: str, args: list[str]) -> None:
    django.setup()
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    client = Client()
    *addresses, count = args
    if kind == "sign-in":
        username, password, *addresses = addresses
        url, data = "/accounts/login/", {"username": username, "password": password}
    else:
        email, *addresses = addresses
        url, data = "/accounts/password_reset/", {"email": email}
    for ip in addresses:
        for _ in range(int(count)):
            print(client.post(url, data, REMOTE_ADDR=ip).status_code)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
