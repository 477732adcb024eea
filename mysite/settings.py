"""Settings for the demo site. SQLite by default; ``DATABASE_URL`` switches to PostgreSQL or MariaDB."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
import django

BASE_DIR = Path(__file__).resolve().parent.parent


def local_secret_key(path: Path) -> str:
    """This checkout's own key, made on first run into an owner-only file: never a public
    default (sessions, password reset links and sealed passwords all hang on it)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    except FileExistsError:
        pass
    return path.read_text().strip()


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or local_secret_key(BASE_DIR / "var" / "secret_key")
# Off unless asked (DJANGO_DEBUG=1): a debug page shows settings and row values to anyone.
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bulkadmin",
    "mysite",
    "mysite.library",
    # Django's Tasks framework with a database backend, for BULKADMIN_LAUNCHER=tasks
    # (``python manage.py db_worker`` runs the tasks); on Django 5.2 through the backport.
    *([] if django.VERSION >= (6, 0) else ["django_tasks"]),
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The admin (and bulkadmin's pages) in the browser's language: English or French here.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

SQLITE_OPTIONS: dict[str, Any] = {
    # Several worker processes write at once: WAL lets readers go on, IMMEDIATE takes the write
    # lock at BEGIN (no deadlock on upgrade), and the timeout makes writers wait their turn.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 60,
}


MYSQL_OPTIONS: dict[str, Any] = {
    # Every character a file may hold, and errors rather than silent truncation.
    "charset": "utf8mb4",
    "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
}


def database_from_env(default_sqlite: Path) -> dict[str, Any]:
    """``DATABASE_URL`` (sqlite://, postgres://, mysql:// for MariaDB) or the SQLite file."""
    config: dict[str, Any] = dict(
        dj_database_url.config(default=f"sqlite:///{default_sqlite}", conn_max_age=0)
    )
    if config["ENGINE"].endswith("sqlite3"):
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
        name = str(config.get("NAME") or "")
        if name and name != ":memory:" and not name.startswith("file:") and not Path(name).exists():
            # Created owner-only before SQLite creates it as the umask says (its -wal and -shm
            # files take the database file's mode).
            with contextlib.suppress(FileExistsError):
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    elif config["ENGINE"].endswith("mysql"):
        config["OPTIONS"] = {**MYSQL_OPTIONS, **config.get("OPTIONS", {})}
    return config


DATABASES = {"default": database_from_env(BASE_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("fr", "Français")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"

# The demo prints emails (password links for new users) on the console.
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = "bulkadmin-demo@localhost"

# Celery, used when BULKADMIN["LAUNCHER"] is "celery" (BULKADMIN_LAUNCHER=celery make demo).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "bulkadmin")
# A chunk whose worker died is delivered again after this many seconds (late acknowledgement).
# kombu looks for such messages every unacked_restore_interval × unacked_restore_throttle seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

BULKADMIN = {
    # Uploads awaiting confirmation and job logs: private, never under STATIC_ROOT or MEDIA_ROOT.
    "DATA_DIR": BASE_DIR / "var" / "bulkadmin",
    "SITE_URL": "http://127.0.0.1:8000",
    "LAUNCHER": os.environ.get("BULKADMIN_LAUNCHER", "subprocess"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"bulkadmin": {"handlers": ["console"], "level": "INFO"}},
}
