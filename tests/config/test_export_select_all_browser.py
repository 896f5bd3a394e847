"""The admin export page's "Select all" works under the Content-Security-Policy.

django-import-export wires it with an inline onchange, which the policy refuses; our
override of its template binds it from herald/export_select_all.js instead.
"""

from typing import Any

import pytest
from django.contrib.auth.models import User

from contacts.models import Contact
from tests.config.test_production_csp_browser import watch_console
from tests.contacts.conftest import uk
from tests.e2e.conftest import page  # noqa: F401 (the fixture)
from tests.e2e.test_admin_in_browser import log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FIELD_BOXES = '.selectable-field-export-row input[type="checkbox"]:not(.select-toggle)'


def ticked(tab: Any) -> list[bool]:
    return [box.is_checked() for box in tab.locator(FIELD_BOXES).all()]


@pytest.mark.parametrize("model", ["contact", "optout"])
def test_select_all_clears_and_ticks_every_field_and_nothing_is_refused(
    page: Any,  # noqa: F811 (the fixture)
    live_server: Any,
    admin_user: User,
    model: str,
) -> None:
    admin_user.set_password("pw-admin")
    admin_user.save()
    Contact.objects.create(phone=uk(1), first_name="Ada")
    problems = watch_console(page)
    log_in(page, live_server.url, admin_user)
    page.goto(f"{live_server.url}/admin/contacts/{model}/export/")
    page.wait_for_load_state("networkidle")
    assert len(ticked(page)) > 2 and all(ticked(page))

    page.click("label[for=select-all-toggle]")  # the label now names its checkbox
    assert not page.is_checked("#select-all-toggle")
    assert not any(ticked(page))

    page.locator(FIELD_BOXES).first.check()
    page.click("#select-all-toggle")
    assert all(ticked(page))
    assert problems == []
