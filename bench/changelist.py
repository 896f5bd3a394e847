"""Time the contact changelist against whatever database DATABASE_URL names.

Prints `name=milliseconds` lines (medians of --repeat requests), for bench/run.py.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from contacts.models import Contact, Group  # noqa: E402


def median_ms(client: Client, url: str, params: dict[str, str], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url, params, secure=True)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    setup_test_environment()
    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    middle = (
        Contact.objects.filter(pk__gte=Contact.objects.count() // 2)
        .values_list("phone", flat=True)
        .first()
    )
    group = Group.objects.get(name="Bench")
    url = "/admin/contacts/contact/"
    # The national form, as a person would type it: the page must normalise it.
    assert middle is not None, "no contacts: import some first"
    typed = "0" + middle[3:] if middle.startswith("+44") else middle
    client.get(url, secure=True)  # warm up
    print(f"search_phone_ms={median_ms(client, url, {'q': typed}, args.repeat):.1f}")
    print(f"first_page_ms={median_ms(client, url, {}, args.repeat):.1f}")
    by_group = {"group": str(group.pk)}
    print(f"group_filter_ms={median_ms(client, url, by_group, args.repeat):.1f}")


if __name__ == "__main__":
    with override_settings(
        SECURE_SSL_REDIRECT=False,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        main()
