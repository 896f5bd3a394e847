"""Herald settings: read once from the environment (django-environ).

Every knob an operator may turn is listed in README.md under "Configuration".
"""

import importlib.util
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.logging import init_sentry, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is a convenience for development; the process environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Development (DEBUG on) gets a throwaway key. Production must bring its own: signing (sessions,
# reset links) and the keys derived from it (credentials, erased numbers) would otherwise
# rest on a key anyone can read here, so without one the process refuses to start.
DEVELOPMENT_SECRET_KEY = "django-insecure-herald-development-only-key"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY if DEBUG else "")
if not DEBUG and (
    SECRET_KEY == DEVELOPMENT_SECRET_KEY
    or SECRET_KEY.startswith("django-insecure-")
    or len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
):
    raise ImproperlyConfigured(
        "SECRET_KEY is missing, the development key, or too weak (under 50 characters, or "
        "'django-insecure-'): with DEBUG off Herald will not start on it. Set SECRET_KEY to "
        "50 or more random characters (python -c 'import secrets; "
        "print(secrets.token_urlsafe(50))'), or DEBUG=True for development."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Keys for provider credentials at rest (Fernet, comma separated, newest first so
# old keys still decrypt while rows are re-saved). Derived from SECRET_KEY when
# unset, which a deploy check warns about: rotating SECRET_KEY would lose them.
CREDENTIALS_KEYS = env.list("CREDENTIALS_KEYS", default=[])

INSTALLED_APPS = [
    "config.apps.AdminConfig",  # the admin's modules load with the URLconf, not in workers
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_q",
    "import_export",
    "axes",
    "audit",
    "contacts",
    "messaging",
    "campaigns",
    "api",
    "dashboard",
]
# The API docs' Swagger UI comes from django-ninja's own files, served locally (never a
# CDN): its templates and static folders are named here rather than listing "ninja" as
# an app, which would import the whole of ninja and pydantic (11 MB) into every process,
# the workers too. Found without importing it.
NINJA_DIR = Path(importlib.util.find_spec("ninja").submodule_search_locations[0])  # type: ignore[index, union-attr]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise (static files stay cacheable): every page and export is `no-store`.
    "config.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "audit.context.ClientAddressMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it turns a refused sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates", NINJA_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context.dashboard",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker write to the same file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock up front so a transaction never
    # fails half-way on a lock upgrade, and the timeout waits out the other one.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# Kept open between requests (SQLite too: opening a file and setting its pragmas again for
# each request cost a signed webhook a third of its time); a broken one is replaced.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that asks the socket before it asks the server
    # (config/postgresql): a request saves a round trip.
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    # Parameters bound by the server, so psycopg prepares a statement run often (after five
    # runs) and PostgreSQL stops planning it afresh: a signed webhook's six statements went
    # 20% faster. Off behind a pooler that cannot keep prepared statements (PgBouncer in
    # transaction mode before 1.21).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "server_side_binding", env.bool("DB_SERVER_SIDE_BINDING", default=True)
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `collectstatic` puts the files whitenoise serves (hashed, compressed) without DEBUG.
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static", NINJA_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"

# Sign-in: django-axes keeps failed sign-ins (the dashboard's and the admin's alike) in the
# database, shared by every web machine; audit/lockout.py pauses signing in when a username
# from one address, a username from anywhere, or one address whatever the username reaches
# its limit. The pause doubles with each earlier one of that username or address in a day.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Whether a proxy of ours sets X-Forwarded-For (see audit/context.py for which entry counts).
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
HERALD_LOGIN_FAILURE_LIMIT = env.int("HERALD_LOGIN_FAILURE_LIMIT", default=5)
# Spread over addresses (not counted at one the user signed in from in the last
# HERALD_LOGIN_KNOWN_ADDRESS_DAYS, so a stranger cannot lock them out of their own desk).
HERALD_LOGIN_USERNAME_FAILURE_LIMIT = env.int("HERALD_LOGIN_USERNAME_FAILURE_LIMIT", default=10)
HERALD_LOGIN_KNOWN_ADDRESS_DAYS = env.int("HERALD_LOGIN_KNOWN_ADDRESS_DAYS", default=30)
# Spread over usernames: an office behind one address shares it.
HERALD_LOGIN_ADDRESS_FAILURE_LIMIT = env.int("HERALD_LOGIN_ADDRESS_FAILURE_LIMIT", default=20)
HERALD_LOGIN_COOLOFF_MINUTES = env.int("HERALD_LOGIN_COOLOFF_MINUTES", default=15)
HERALD_LOGIN_COOLOFF_MAX_MINUTES = env.int("HERALD_LOGIN_COOLOFF_MAX_MINUTES", default=24 * 60)
AXES_HANDLER = "audit.lockout.HeraldLockoutHandler"
AXES_FAILURE_LIMIT = HERALD_LOGIN_FAILURE_LIMIT
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username", "ip_address"]
AXES_COOLOFF_TIME = "audit.lockout.cool_off"
# Each failure is forgotten at its own time (the cool-off in force when it happened).
AXES_USE_ATTEMPT_EXPIRATION = True
# Attempts refused during a pause are not failures: hammering does not lengthen it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "audit.lockout.lockout_page"
AXES_CLIENT_IP_CALLABLE = "audit.context.client_ip"
# Sign-ins and sign-outs are in Herald's own audit log (audit/); axes keeps failures only.
AXES_DISABLE_ACCESS_LOG = True
# Failures are in the audit log too; axes' own log lines name the address, not what was typed.
AXES_VERBOSE = False
AXES_CLIENT_STR_CALLABLE = "audit.lockout.client_str"
# Passwords are never stored in the failure records axes keeps.
AXES_SENSITIVE_PARAMETERS = ["password", "password1", "password2", "csrfmiddlewaretoken"]

# Admin imports and exports (django-import-export) need the model's add / view permission;
# unset, any staff user could export every contact or import opt-outs.
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"
# A control character in a name (XLSX cannot hold one) becomes U+FFFD in an XLSX export,
# instead of failing the whole export and logging the offending value.
IMPORT_EXPORT_ESCAPE_ILLEGAL_CHARS_ON_EXPORT = True

# Sessions end after a working day from sign-in (SESSION_COOKIE_AGE, seconds), or when the
# browser closes, whichever comes first: a laptop left open overnight is signed out.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 60 * 60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)

# Password-reset mails go where EMAIL_URL says (smtp+tls://user:password@host:587). Unset,
# development (DEBUG on) prints them; production sends none (a deploy check error) rather
# than print reset links into its logs or drop them: printing (consolemail://) or files
# (filemail:////path) must be chosen. Not kept as a setting: it may hold a password.
_email_url = env.str("EMAIL_URL", default="consolemail://" if DEBUG else "")
if _email_url:
    vars().update(environ.Env.email_url_config(_email_url))
else:
    EMAIL_BACKEND = "config.mail.UnconfiguredEmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="herald@localhost")
# Reset links asked for one e-mail address, and from one client address, within the window;
# counted in the database. Past the first, the page is the same and no mail goes; past the
# second, the client is told to wait (429).
HERALD_PASSWORD_RESET_EMAIL_LIMIT = env.int("HERALD_PASSWORD_RESET_EMAIL_LIMIT", default=3)
HERALD_PASSWORD_RESET_CLIENT_LIMIT = env.int("HERALD_PASSWORD_RESET_CLIENT_LIMIT", default=10)
HERALD_PASSWORD_RESET_WINDOW_MINUTES = env.int("HERALD_PASSWORD_RESET_WINDOW_MINUTES", default=60)

# Herald's own knobs.
# Links in campaign texts become per-recipient short links on this address (e.g.
# https://hrl.example/, served by Herald at /r/<code>); empty: links go out as written.
HERALD_LINK_BASE = env.str("HERALD_LINK_BASE", default="")
# Each API token's pace, as "N/s", "N/min" or "N/hour": over it, 429 with Retry-After.
HERALD_API_RATE = env.str("HERALD_API_RATE", default="1200/min")
HERALD_DEFAULT_REGION = env.str("HERALD_DEFAULT_REGION", default="GB")
HERALD_DISPATCH_BATCH_SIZE = env.int("HERALD_DISPATCH_BATCH_SIZE", default=500)
HERALD_SEND_LEASE_SECONDS = env.int("HERALD_SEND_LEASE_SECONDS", default=300)
# Provider requests one worker keeps in flight at once when a send is one request per
# message (single sends), so a slow answer or a retry's wait holds up no other; the
# account's rate limit still paces them all (account option `concurrency` overrides it).
HERALD_SEND_CONCURRENCY = env.int("HERALD_SEND_CONCURRENCY", default=16)
# A campaign's run claims, sends and records batches in this many lanes side by side, each
# on a database connection of its own: one lane's rows are written while another's
# request is out, so the database and the provider work at once.
HERALD_DISPATCH_LANES = env.int("HERALD_DISPATCH_LANES", default=2)
# SQLite: the page cache of the connection that writes a large campaign's messages (and
# short links), MB. The indexes a build adds to at random places (a number's, a link
# code's) outgrow SQLite's default 2 MB at once, and every chunk then wrote pages out
# and read them back: 300,000 short links took 1.43x the build without them with the
# default cache, 1.09x with 64 MB (medians of 3). Only pages the build touches are
# taken, and they are given back when its connection closes at the build's end.
HERALD_SQLITE_BUILD_CACHE_MB = env.int("HERALD_SQLITE_BUILD_CACHE_MB", default=64)
# A message in doubt is looked up at its provider only after this long, so a request
# the provider is still working on is not mistaken for one it never received.
HERALD_RECONCILE_AFTER_SECONDS = env.int("HERALD_RECONCILE_AFTER_SECONDS", default=60)
# One round of lookups at the providers (sends in doubt, delivery statuses) stops after
# this long; what it did not get to comes first in the next round.
HERALD_LOOKUP_ROUND_SECONDS = env.int("HERALD_LOOKUP_ROUND_SECONDS", default=30)
# A campaign whose only unfinished messages have been in doubt this long completes, with
# them counted as in doubt; staff decide on them (mark as sent / send again).
HERALD_IN_DOUBT_GIVE_UP_SECONDS = env.int("HERALD_IN_DOUBT_GIVE_UP_SECONDS", default=3600)
# A campaign's run waits up to this long for its next retry to fall due rather than
# leaving it to the minute tick (kept well under Q_TIMEOUT).
HERALD_RETRY_WAIT_SECONDS = env.int("HERALD_RETRY_WAIT_SECONDS", default=60)
# The first wait before a provider request is asked again within one send or lookup
# (a 5xx, a 429, an idempotent send whose answer was lost); it doubles each time, up to
# 5 s, and is never shorter than the provider's Retry-After.
HERALD_REQUEST_RETRY_SECONDS = env.float("HERALD_REQUEST_RETRY_SECONDS", default=0.5)
# The dashboard's message counts per campaign are kept this long (0: counted every time).
HERALD_LIVE_COUNTS_SECONDS = env.int("HERALD_LIVE_COUNTS_SECONDS", default=2)
# A report page (one date range) is counted once and shown to everyone for this long
# (0: counted every time); its CSV export is always counted afresh.
HERALD_REPORT_SECONDS = env.int("HERALD_REPORT_SECONDS", default=60)
# Whom a signed-in user with no role is told to ask for access on the dashboard's home
# (a name, team or address); empty: "an administrator of Herald".
HERALD_ACCESS_CONTACT = env.str("HERALD_ACCESS_CONTACT", default="")
HERALD_MAX_SEND_ATTEMPTS = env.int("HERALD_MAX_SEND_ATTEMPTS", default=5)
# An approved campaign whose audience grew by more than this share, or by more than this
# many recipients, between approval and build is held for approval again.
HERALD_APPROVAL_GROWTH_SHARE = env.float("HERALD_APPROVAL_GROWTH_SHARE", default=0.10)
HERALD_APPROVAL_GROWTH_RECIPIENTS = env.int("HERALD_APPROVAL_GROWTH_RECIPIENTS", default=1000)
# The frequency cap: at most this many marketing messages per contact in any rolling
# HERALD_FREQUENCY_CAP_DAYS days (0: no cap). Those allowed may override it per campaign.
HERALD_FREQUENCY_CAP_MESSAGES = env.int("HERALD_FREQUENCY_CAP_MESSAGES", default=0)
HERALD_FREQUENCY_CAP_DAYS = env.int("HERALD_FREQUENCY_CAP_DAYS", default=7)
# Test sends of draft campaigns each user may make in any hour, counted in the database
# (0: no test sends).
HERALD_TEST_SENDS_PER_HOUR = env.int("HERALD_TEST_SENDS_PER_HOUR", default=10)
# Replies: a reply is put down to the campaign of the last message sent to its number within
# this many days; HELP/INFO are answered with HERALD_HELP_REPLY at most once a day per number;
# a reply's body is kept up to HERALD_INBOUND_BODY_MAX_CHARS (the rest is cut, and marked so);
# a polled gateway is read at most HERALD_INBOUND_PAGE_BUDGET pages a run.
HERALD_REPLY_ATTRIBUTION_DAYS = env.int("HERALD_REPLY_ATTRIBUTION_DAYS", default=7)
HERALD_HELP_REPLY = env.str(
    "HERALD_HELP_REPLY",
    default="Thanks for your message. Reply STOP to stop receiving our messages.",
)
HERALD_INBOUND_BODY_MAX_CHARS = env.int("HERALD_INBOUND_BODY_MAX_CHARS", default=4096)
HERALD_INBOUND_PAGE_BUDGET = env.int("HERALD_INBOUND_PAGE_BUDGET", default=10)
# Signed webhooks: "queued" records the event, answers, and a worker applies it (the one
# holding the applier's lease keeps looking for HERALD_WEBHOOK_LINGER_SECONDS after the
# last); "inline" applies it within the request.
HERALD_WEBHOOK_APPLY = env.str("HERALD_WEBHOOK_APPLY", default="queued")
if HERALD_WEBHOOK_APPLY not in ("queued", "inline"):
    raise ImproperlyConfigured("HERALD_WEBHOOK_APPLY must be queued or inline")
HERALD_WEBHOOK_LINGER_SECONDS = env.float("HERALD_WEBHOOK_LINGER_SECONDS", default=5.0)
# Uploaded contact and opt-out files up to this size (an XLSX's size unpacked) are checked in
# the request, after the upload is committed; larger ones by a worker.
HERALD_IMPORT_INLINE_CHECK_BYTES = env.int("HERALD_IMPORT_INLINE_CHECK_BYTES", default=2_000_000)
# Import uploads larger than this are refused by the form; what is past it is never stored.
HERALD_IMPORT_MAX_UPLOAD_BYTES = env.int("HERALD_IMPORT_MAX_UPLOAD_BYTES", default=50_000_000)
# An XLSX is checked against these before it is parsed (contacts/workbooks.py): its parts
# unpacked together, how hard any part over 1 MB is compressed, rows of a sheet, different
# texts (shared strings), characters in a cell (Excel's own limit is 32,767).
HERALD_IMPORT_XLSX_MAX_BYTES = env.int("HERALD_IMPORT_XLSX_MAX_BYTES", default=200_000_000)
HERALD_IMPORT_XLSX_MAX_RATIO = env.int("HERALD_IMPORT_XLSX_MAX_RATIO", default=100)
HERALD_IMPORT_XLSX_MAX_ROWS = env.int("HERALD_IMPORT_XLSX_MAX_ROWS", default=1_048_576)
HERALD_IMPORT_XLSX_MAX_SHARED_STRINGS = env.int(
    "HERALD_IMPORT_XLSX_MAX_SHARED_STRINGS", default=1_000_000
)
HERALD_IMPORT_XLSX_MAX_CELL_CHARS = env.int("HERALD_IMPORT_XLSX_MAX_CELL_CHARS", default=32_767)
# An import's rejected-rows report stops after this many rows or bytes, saying how many more.
HERALD_IMPORT_ERROR_REPORT_ROWS = env.int("HERALD_IMPORT_ERROR_REPORT_ROWS", default=100_000)
HERALD_IMPORT_ERROR_REPORT_BYTES = env.int("HERALD_IMPORT_ERROR_REPORT_BYTES", default=20_000_000)
# An import with no progress for this long lost its worker and may be resumed.
HERALD_IMPORT_STALL_SECONDS = env.int("HERALD_IMPORT_STALL_SECONDS", default=600)
HERALD_HEARTBEAT_STALE_SECONDS = env.int("HERALD_HEARTBEAT_STALE_SECONDS", default=180)
# Message bodies, template parameters, delivery events and import files older than this
# many days are purged daily, counts and costs kept (0: kept for ever; see README.md,
# "Data retention and erasure").
HERALD_RETENTION_DAYS = env.int("HERALD_RETENTION_DAYS", default=0)
# Key of the hashes erased numbers are remembered by; derived from SECRET_KEY when unset,
# which a deploy check warns about: a new key forgets every erased number.
HERALD_ERASURE_KEY = env.str("HERALD_ERASURE_KEY", default="")

# django-q2: tasks are wake-ups; Message rows are the truth. `retry` must exceed
# `timeout` so a slow task is never handed to a second worker while it still runs.
# Q_BROKER: "orm" keeps the queue in the database every machine already shares; "redis"
# puts it in REDIS_URL. Either way tasks are enqueued on commit (see campaigns/models.py).
Q_BROKER = env.str("Q_BROKER", default="orm")
Q_CLUSTER = {
    # Q_NAME: the queue's name (and its signing salt): the same for every process of one
    # Herald; another Herald sharing the Redis server needs a name of its own.
    "name": env.str("Q_NAME", default="herald"),
    **(
        {"redis": REDIS_URL or "redis://127.0.0.1:6379/0"}
        if Q_BROKER == "redis"
        else {"orm": "default"}
    ),
    "workers": env.int("Q_WORKERS", default=2),
    # A task running longer is stopped; one whose worker died is handed out again after
    # `retry` seconds (which must exceed `timeout`).
    "timeout": env.int("Q_TIMEOUT", default=600),
    "retry": env.int("Q_RETRY", default=720),
    "max_attempts": 3,
    "catch_up": False,
    "ack_failures": True,
    "poll": 0.5,
    "save_limit": 1000,
    "label": "Tasks",
    "sync": env.bool("Q_SYNC", default=False),
    # django-q2 logs every task at INFO; the minute tick would drown everything else.
    "log_level": env.str("Q_LOG_LEVEL", default="WARNING"),
}

# LOG_FORMAT: "json" (one JSON object a line, the default without DEBUG) or "plain".
# Either way phone numbers, bodies and secrets are masked (config/logging.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
# Error pages and error e-mails mask variables named like secrets, with DEBUG on or off.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.errors.HeraldExceptionReporterFilter"
LOGGING = logging_config(
    json_lines=LOG_FORMAT == "json", level=env.str("LOG_LEVEL", default="INFO")
)

# Content-Security-Policy on every response: scripts, styles, images and requests only from
# this site, nothing inline. Django's admin (5.2) and our pages load their JS from static
# files. Style *attributes* are allowed: the progress bars carry their widths in one, and
# an attribute can only style, never run script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Sentry, only when SENTRY_DSN is set (`pip install 'herald[sentry]'`); events are redacted
# like the logs, and carry no personal data, local variables or request bodies.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    init_sentry(
        SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        release=env.str("SENTRY_RELEASE", default="") or None,
    )

# Production hardening: on whenever DEBUG is off, so `check --deploy` is clean.
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers probe over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
    if env.bool("BEHIND_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
