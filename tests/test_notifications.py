"""Emails a job sends: its starter's when it ends, and new users' links, on the site it was
started on (not a fixed setting); never a starter email for the command line."""

from __future__ import annotations

import pytest
from django.core import mail

from bulkadmin.engine import JobRunner
from bulkadmin.jobs import create_job
from bulkadmin.models import ImportJob
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import IMPORT_PERMS, make_user, url

pytestmark = pytest.mark.django_db(transaction=True)


def confirm_and_run(client, content: str, **options: str) -> ImportJob:
    from django.core.files.uploadedfile import SimpleUploadedFile

    payload = {
        "file": SimpleUploadedFile("staff.csv", content.encode()),
        "importer": "bulkadmin.importers.users.UserImporter",
        **options,
    }
    host = {"HTTP_HOST": "imports.example.com:8100"}
    response = client.post(url("add"), payload, **host)
    client.post(url("confirm"), {"token": response.context["confirm_form"].initial["token"]}, **host)
    job = ImportJob.objects.get()
    return JobRunner(job.pk, workers=1).run()


def test_the_starter_gets_an_email_with_the_counts_and_a_link_on_the_site_they_used(client, settings):
    settings.ALLOWED_HOSTS = ["imports.example.com", "testserver"]
    starter = make_user("starter", perms=IMPORT_PERMS)
    starter.email = "starter@example.com"
    starter.save()
    client.force_login(starter)
    job = confirm_and_run(
        client, "username,email\nann,ann@example.com\nboom1,b@example.com\n", send_password_email="on"
    )
    assert (job.succeeded, job.failed) == (1, 1)
    to_starter = [m for m in mail.outbox if m.to == ["starter@example.com"]]
    assert len(to_starter) == 1
    message = to_starter[0]
    assert message.subject == f"Import #{job.pk} finished with errors: 1 succeeded, 1 failed"
    assert f"http://imports.example.com:8100/admin/bulkadmin/importjob/{job.pk}/change/" in message.body
    assert "Rows: 2" in message.body
    # the new user's link points at the same site, not at SITE_URL (127.0.0.1:8000)
    (welcome,) = [m for m in mail.outbox if m.to == ["ann@example.com"]]
    assert "http://imports.example.com:8100/accounts/reset/" in welcome.body


def test_the_job_page_counts_the_emails_to_new_users(client, monkeypatch, settings):
    """Before: the page did not say how many new users were emailed, or were not."""
    settings.ALLOWED_HOSTS = ["imports.example.com", "testserver"]
    refused = {"cyd@example.com"}

    def send_mail(**kwargs):
        if set(kwargs["recipient_list"]) & refused:
            raise ConnectionRefusedError("mail server down")
        mail.send_mail(**kwargs)

    monkeypatch.setattr("bulkadmin.importers.users.send_mail", send_mail)
    starter = make_user("starter", perms=IMPORT_PERMS)
    client.force_login(starter)
    job = confirm_and_run(
        client,
        "username,email\nann,ann@example.com\nbob,\ncyd,cyd@example.com\nboom1,d@example.com\n",
        send_password_email="on",
    )
    assert (job.succeeded, job.failed) == (3, 1)
    assert (job.emails_sent, job.emails_skipped, job.emails_failed) == (1, 1, 1)
    assert [m.to for m in mail.outbox if m.to != [starter.email]] == [["ann@example.com"]]
    page = client.get(url("change", job.pk)).content.decode()
    assert "Emails to new users: 1 sent, 1 skipped (no address), 1 not sent (see the job log)." in page


def test_no_starter_email_for_the_command_line_or_when_switched_off(write_file, settings):
    path = write_file("u.csv", "username\nann\n")
    job, _ = create_job(path, path.name)
    assert job is not None
    JobRunner(job.pk, workers=1).run()
    assert mail.outbox == []

    settings.BULKADMIN = {**settings.BULKADMIN, "NOTIFY_STARTER": False}
    starter = make_user("quiet", perms=IMPORT_PERMS)
    starter.email = "quiet@example.com"
    starter.save()
    job, _ = create_job(write_file("v.csv", "username\nbob\n"), "v.csv", user=starter)
    assert job is not None
    JobRunner(job.pk, workers=1).run()
    assert mail.outbox == []
