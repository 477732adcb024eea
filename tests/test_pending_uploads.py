"""MAX_PENDING_UPLOADS_PER_USER: each user's uploads wait in a directory of their own, and one
more than the cap is refused before anything is stored; a confirm or a cancel frees a slot."""

from __future__ import annotations

import os
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bulkadmin import conf, uploads
from bulkadmin.models import ImportJob
from tests.conftest import in_threads
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures: a private DATA_DIR)
from tests.test_admin_support import IMPORT_PERMS, make_user, url
from tests.test_admin_upload import GOOD, STAFF_HEADERS, token_of, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def cap(settings):
    def set_cap(value: int | None) -> None:
        settings.BULKADMIN = {**settings.BULKADMIN, "MAX_PENDING_UPLOADS_PER_USER": value}

    return set_cap


def files_of(user) -> list[str]:
    """The uploads waiting for this user, as they lie on disk."""
    directory = uploads.owner_dir(user.pk)
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def refusal(response) -> list[str]:
    assert response.status_code == 200
    assert "bulkadmin/upload.html" in [t.name for t in response.templates]
    return list(response.context["adminform"].form.errors.get("file", []))


def test_one_upload_over_the_cap_is_refused_with_what_to_do_and_nothing_is_written(
    staff_client, importer_user, cap
):
    cap(2)
    first, second = upload(staff_client, GOOD), upload(staff_client, GOOD)
    assert "report" in first.context and "report" in second.context
    waiting = files_of(importer_user)
    assert len(waiting) == 2

    with CaptureQueriesContext(connection) as queries:
        third = upload(staff_client, GOOD, name="third.csv")

    (message,) = refusal(third)
    assert message.startswith("You have 2 reports waiting for confirmation, the most allowed.")
    assert "Import or cancel one of them from its page first, or upload again in 23" in message
    html = third.content.decode()
    assert "errornote" in html and "confirm_form" not in html
    assert 'name="_discard_waiting"' in html  # the way out when those pages were closed
    assert files_of(importer_user) == waiting  # the third file was never stored
    writes = [
        q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == [] and ImportJob.objects.count() == 0

    cap(None)  # no cap: the same upload goes through
    assert "report" in upload(staff_client, GOOD).context
    assert len(files_of(importer_user)) == 3


def test_the_refusal_says_when_the_oldest_expires(staff_client, importer_user, cap):
    cap(1)
    upload(staff_client, GOOD)
    (oldest,) = uploads.owner_dir(importer_user.pk).iterdir()
    written = time.time() - (conf.get("STALE_UPLOAD_SECONDS") - 2 * 3600 - 30)  # 2 h 30 s left
    os.utime(oldest, (written, written))
    (message,) = refusal(upload(staff_client, GOOD))
    assert message.startswith("You have 1 report waiting for confirmation")
    assert "upload again in 2\xa0hours, when it expires." in message

    # once it has expired it no longer counts (and the next upload's clean-up deletes it)
    long_ago = time.time() - 2 * 24 * 3600
    os.utime(oldest, (long_ago, long_ago))
    assert "report" in upload(staff_client, GOOD).context
    assert oldest.name not in files_of(importer_user)


def test_confirming_or_cancelling_a_report_frees_a_slot(
    staff_client, importer_user, cap, launched, django_capture_on_commit_callbacks
):
    cap(1)
    token = token_of(upload(staff_client, GOOD))
    assert refusal(upload(staff_client, GOOD))
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = staff_client.post(url("confirm"), {"token": token})
    assert confirmed.status_code == 302 and ImportJob.objects.count() == 1
    assert files_of(importer_user) == []  # the job holds the file now, outside the user's directory
    job = ImportJob.objects.get()
    late = staff_client.post(url("discard"), {"token": token, "_cancel": "Cancel"}, follow=True)
    assert not any("not imported" in str(m) for m in late.context["messages"])  # a Cancel in another tab
    assert uploads.confirmed_path(str(job.upload_id)).is_file()

    report = upload(staff_client, GOOD, workers="2")
    html = report.content.decode()
    assert f'action="{url("discard")}"' in html and 'name="_cancel"' in html
    assert refusal(upload(staff_client, GOOD))
    cancelled = staff_client.post(url("discard"), {"token": token_of(report), "_cancel": "Cancel"})
    assert cancelled.status_code == 302
    assert cancelled["Location"].startswith(url("add") + "?") and "workers=2" in cancelled["Location"]
    assert files_of(importer_user) == []
    follow = staff_client.get(cancelled["Location"])
    assert any(
        "The upload “users.csv” is deleted; nothing was imported." in str(m)
        for m in follow.context["messages"]
    )

    # the column mapping step's Cancel too (its form posts the token to the same place)
    mapping = upload(staff_client, STAFF_HEADERS)
    assert next(t.name for t in mapping.templates) == "bulkadmin/mapping.html"
    assert f'formaction="{url("discard")}"' in mapping.content.decode()
    assert refusal(upload(staff_client, GOOD))
    token = mapping.context["form"].initial["token"]
    assert staff_client.post(url("discard"), {"token": token, "_cancel": "Cancel"}).status_code == 302
    assert files_of(importer_user) == []
    assert "report" in upload(staff_client, GOOD).context


def test_another_users_uploads_neither_count_nor_can_be_cancelled(staff_client, importer_user, cap):
    cap(1)
    token = token_of(upload(staff_client, GOOD))
    assert refusal(upload(staff_client, GOOD))
    other = make_user("other", perms=IMPORT_PERMS)
    theirs = Client()
    theirs.force_login(other)
    assert "report" in upload(theirs, GOOD).context
    assert len(files_of(other)) == 1 and uploads.owner_dir(other.pk) != uploads.owner_dir(importer_user.pk)

    theirs.post(url("discard"), {"token": token, "_cancel": "Cancel"})  # a token of someone else's
    assert len(files_of(importer_user)) == 1
    theirs.post(url("discard"), {"_discard_waiting": "1"})
    assert len(files_of(importer_user)) == 1 and files_of(other) == []


def test_at_the_cap_the_waiting_uploads_can_be_deleted_from_the_upload_form(staff_client, importer_user, cap):
    cap(2)
    upload(staff_client, GOOD)
    upload(staff_client, GOOD)
    assert refusal(upload(staff_client, GOOD))
    response = staff_client.post(url("discard"), {"_discard_waiting": "1"}, follow=True)
    assert response.redirect_chain == [(url("add"), 302)]
    assert any(
        "2 uploads waiting for confirmation were deleted." in str(m) for m in response.context["messages"]
    )
    assert files_of(importer_user) == []
    assert 'name="_discard_waiting"' not in response.content.decode()  # shown at the cap only
    assert "report" in upload(staff_client, GOOD).context


def test_an_upload_id_never_leaves_its_owners_directory(importer_user, settings):
    directory = uploads.owner_dir(importer_user.pk)
    assert directory.parent == uploads.uploads_dir() and len(directory.name) == 64
    assert uploads.owner_dir(str(importer_user.pk)) == directory != uploads.owner_dir(importer_user.pk + 1)
    for forged in ("../" + "a" * 30, "a" * 31, "/etc/passwd", "", "g" * 32):
        with pytest.raises(uploads.UploadExpired):
            uploads.path_for(forged, importer_user.pk)
    upload_id = uploads.save_chunks([b"username\nann\n"], owner=importer_user.pk)
    assert uploads.path_for(upload_id, importer_user.pk).parent == directory
    assert uploads.path_for(upload_id.upper(), importer_user.pk).name == upload_id

    settings.SECRET_KEY = "another-secret-key-0123456789abcdef-0123456789abcdef"
    assert uploads.owner_dir(importer_user.pk) != directory  # keyed: a pk alone does not name it


def test_one_users_uploads_and_cancels_at_once_never_trip_over_their_directory(importer_user):
    """Before, a cancel (or a confirm, or any upload's clean-up) removed the user's directory
    once empty, while another upload of theirs was making it: that upload failed with "File
    exists" (CI, five uploads of one user at once)."""

    def upload_and_cancel() -> None:
        for _round in range(400):
            upload_id = uploads.save_chunks([b"username\nada\n"], owner=importer_user.pk)
            assert uploads.discard(upload_id, importer_user.pk)

    assert in_threads(upload_and_cancel, 4) == []
    assert files_of(importer_user) == []
