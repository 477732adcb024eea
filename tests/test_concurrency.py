"""Several jobs at once: five uploads confirmed together, their detached runners side by side.

Every job must end with each of its rows done exactly once, and the progress endpoint must keep
its constant cost while they run.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bulkadmin.models import ImportJob, JobStatus
from mysite.sampledata import write_users
from tests.test_admin_support import IMPORT_PERMS, make_user, url
from tests.test_admin_upload import upload
from tests.testapp.models import SignalRecord

User = get_user_model()
pytestmark = pytest.mark.django_db(transaction=True)

JOBS = 5
ROWS = 120


def confirm_upload(index: int, path, user, jobs: list[int], errors: list[BaseException]) -> None:
    """One staff member's upload and confirm click, in its own thread (its own connection)."""
    try:
        client = Client()
        client.force_login(user)
        response = upload(client, path.read_bytes(), name=f"batch-{index}.csv", workers="2")
        # From the page, not response.context: the test client's context capture is shared
        # between threads.
        token = re.search(r'name="token" value="([^"]+)"', response.content.decode())
        assert token, response.content[:500]
        response = client.post(url("confirm"), {"token": token.group(1)})
        assert response.status_code == 302, response.content[:500]
        jobs.append(int(response["Location"].rstrip("/").split("/")[-2]))
    except BaseException as exc:
        errors.append(exc)
    finally:
        connections.close_all()


def test_five_uploads_at_once_each_finish_exactly_once(tmp_path, knobs):
    knobs(record_signals="1", row_delay="0.002")
    user = make_user("importer", perms=IMPORT_PERMS)
    files = [write_users(tmp_path / f"b{i}.csv", ROWS, prefix=f"batch{i}-") for i in range(JOBS)]
    jobs: list[int] = []
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=confirm_upload, args=(i, files[i], user, jobs, errors)) for i in range(JOBS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(jobs) == JOBS

    watcher = Client()
    watcher.force_login(user)
    deadline = time.monotonic() + 240
    polls = 0
    while time.monotonic() < deadline:
        for pk in jobs:
            with CaptureQueriesContext(connection) as queries:
                data = watcher.get(url("progress", pk)).json()
            assert len(queries) <= 6, [q["sql"] for q in queries]  # constant, whatever the job's size
            # the total grows while the runner reads the upload in, then stays
            assert data["processed"] <= data["total"] <= ROWS
            polls += 1
        if ImportJob.objects.filter(pk__in=jobs, status=JobStatus.SUCCEEDED).count() == JOBS:
            break
        time.sleep(0.3)
    finished = list(ImportJob.objects.filter(pk__in=jobs).values_list("status", "processed", "succeeded"))
    assert finished == [(JobStatus.SUCCEEDED, ROWS, ROWS)] * JOBS, finished
    assert polls > JOBS, "the endpoint was polled while the jobs ran"
    assert User.objects.filter(username__startswith="batch").count() == JOBS * ROWS
    posts = SignalRecord.objects.filter(signal="post", username__startswith="batch")
    assert posts.count() == JOBS * ROWS
    assert not posts.values("username").annotate(n=Count("id")).filter(n__gt=1).exists()
