"""System checks catch a BULKADMIN misconfiguration at start-up, not mid-import."""

from __future__ import annotations

import os
import time

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from bulkadmin import uploads
from bulkadmin.checks import check_abandoned_uploads, check_settings
from tests.conftest import manage


@pytest.fixture
def ids(settings):
    """The check ids raised for a BULKADMIN dict (pytest-django restores the settings after)."""

    def check(**bulkadmin) -> list[str | None]:
        settings.BULKADMIN = bulkadmin
        return [message.id for message in check_settings()]

    return check


def test_the_test_settings_pass():
    assert check_settings() == []


@pytest.mark.parametrize(
    ("bulkadmin", "expected"),
    [
        ({"NO_SUCH_KEY": 1}, "bulkadmin.E002"),
        ({"CHUNK_SIZE": 0}, "bulkadmin.E003"),
        ({"MAX_ROWS": "many"}, "bulkadmin.E003"),
        ({"DB_RETRY_DELAYS": 5}, "bulkadmin.E004"),
        ({"DB_RETRY_DELAYS": [1, -1]}, "bulkadmin.E004"),
        ({"DB_RETRY_DELAYS": ["1"]}, "bulkadmin.E004"),
        ({"MAX_PENDING_UPLOADS_PER_USER": 0}, "bulkadmin.E003"),
        ({"MAX_PENDING_UPLOADS_PER_USER": "5"}, "bulkadmin.E003"),
    ],
)
def test_bad_values_are_errors(ids, bulkadmin, expected):
    assert ids(**bulkadmin) == [expected]


def test_no_cap_on_waiting_uploads_is_allowed(ids):
    assert ids(MAX_PENDING_UPLOADS_PER_USER=None) == []
    assert ids(MAX_PENDING_UPLOADS_PER_USER=1) == []


@pytest.mark.django_db
def test_chunk_size_none_is_the_databases_default(ids, settings):
    from django.db import connection

    from bulkadmin import conf

    assert ids(CHUNK_SIZE=None) == []
    assert conf.chunk_size() == (500 if connection.vendor == "sqlite" else 100)
    settings.BULKADMIN = {"CHUNK_SIZE": 40}
    assert conf.chunk_size() == 40


def test_good_retry_delays(ids):
    assert ids(DB_RETRY_DELAYS=[0, 0.5, 2]) == []
    assert ids(DB_RETRY_DELAYS=()) == []  # no retries: the job stops at the first failure


@pytest.mark.parametrize("served", ["STATIC_ROOT", "MEDIA_ROOT"])
def test_data_dir_inside_a_served_directory_is_an_error(ids, settings, tmp_path, served):
    setattr(settings, served, tmp_path / "public")
    assert ids(DATA_DIR=tmp_path / "public" / "bulkadmin") == ["bulkadmin.E005"]
    assert ids(DATA_DIR=tmp_path / "public") == ["bulkadmin.E005"]
    assert ids(DATA_DIR=tmp_path / "private") == []


def test_data_dir_inside_staticfiles_dirs_is_an_error(ids, settings, tmp_path):
    settings.STATICFILES_DIRS = [("vendor", tmp_path / "assets")]
    assert ids(DATA_DIR=tmp_path / "assets" / "data") == ["bulkadmin.E005"]


def test_manage_check_refuses_to_start(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "public"
    settings.BULKADMIN = {"DATA_DIR": tmp_path / "public" / "uploads"}
    with pytest.raises(SystemCheckError, match="which the web server serves"):
        call_command("check")


def test_a_planted_data_dir_is_refused_and_ours_kept_private(tmp_path, settings):
    """Before: the temp-dir default was reused whoever made it, and the job log followed links."""
    import os

    from django.core.exceptions import ImproperlyConfigured

    from bulkadmin import conf

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "planted").symlink_to(elsewhere)
    settings.BULKADMIN = {**settings.BULKADMIN, "DATA_DIR": tmp_path / "planted"}
    with pytest.raises(ImproperlyConfigured, match="symlink or belongs to another user"):
        conf.data_dir()
    if os.getuid() == 0:  # root can hand a directory to someone else, as an attacker would own it
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        settings.BULKADMIN = {**settings.BULKADMIN, "DATA_DIR": theirs}
        with pytest.raises(ImproperlyConfigured):
            conf.data_dir()
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    settings.BULKADMIN = {**settings.BULKADMIN, "DATA_DIR": loose}
    assert conf.data_dir() == loose and loose.stat().st_mode & 0o777 == 0o700


def test_abandoned_uploads_are_a_warning_pointing_at_cleanbulkadmin(settings, tmp_path):
    """Only the next upload deletes abandoned ones: where uploads are rare, cron should."""
    data = tmp_path / "not-yet"
    settings.BULKADMIN = {**settings.BULKADMIN, "DATA_DIR": data}
    assert check_abandoned_uploads() == []
    assert not data.exists()  # looked, made nothing
    upload_id = uploads.save_chunks([b"username\nann\n"], owner=1)
    assert check_abandoned_uploads() == []  # waiting, not abandoned
    long_ago = time.time() - 2 * 24 * 3600
    os.utime(uploads.path_for(upload_id, 1), (long_ago, long_ago))

    (warning,) = check_abandoned_uploads()
    assert warning.id == "bulkadmin.W003" and warning.level == checks.WARNING
    assert warning.msg.startswith("1 abandoned upload (older than BULKADMIN['STALE_UPLOAD_SECONDS']) is")
    assert "python manage.py cleanbulkadmin" in str(warning.hint) and "cron" in str(warning.hint)
    # As a user runs it; the test settings' own deploy errors (Django 6: a console email
    # backend) are not this test's.
    result = manage(
        "check", "--deploy", "--fail-level", "CRITICAL", env={"BULKADMIN_TEST_DATA_DIR": str(data)}
    )
    assert result.returncode == 0 and "bulkadmin.W003" in result.stderr, result.stderr

    assert uploads.cleanup_stale() == 1
    assert check_abandoned_uploads() == []
