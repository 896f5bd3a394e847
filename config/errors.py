"""What an error page or error e-mail may show of a failing request's variables.

Django's own filter hides settings whose names look secret, but shows every local variable
of every frame when DEBUG is on (`make run` runs with it), and the locals of a provider call
hold decrypted credentials: `credentials`, an `Authorization` header, a signing secret.
This filter masks, always, any variable or dict key whose name looks like one.
"""

import re
from typing import Any

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class HeraldExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL|HTTP_COOKIE", flags=re.I
    )

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        return [
            (name, self.cleanse_setting(name, value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
