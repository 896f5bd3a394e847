"""gunicorn for Herald: `gunicorn -c config/gunicorn.conf.py config.wsgi`.

Every knob is an environment variable (README.md, "Production"). gunicorn's own lines (its
errors and the access log) go through Herald's logging: JSON lines, numbers masked.
"""

import multiprocessing
import os

from config.logging import logging_config

_debug = os.environ.get("DEBUG", "").lower() in ("1", "true", "yes", "on")

bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('HERALD_PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# The slowest page (a large campaign's CSV export) streams; nothing else comes near this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Workers are replaced now and then so a slow leak never grows without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
# Behind a proxy on another machine, list its address (FORWARDED_ALLOW_IPS); default: local.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# Path only: a query string may carry a phone number (a contact search), a referer too.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
_log_format = os.environ.get("LOG_FORMAT", "plain" if _debug else "json")
logconfig_dict = {
    **logging_config(json_lines=_log_format == "json", level=os.environ.get("LOG_LEVEL", "INFO")),
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {
            "level": "INFO" if os.environ.get("GUNICORN_ACCESS_LOG", "1") != "0" else "WARNING",
            "handlers": [],
            "propagate": True,
        },
    },
}

# gunicorn 27's control socket (gunicornc) is not used; without it the service needs no
# writable home directory. Older gunicorns ignore the name.
control_socket_disable = True
