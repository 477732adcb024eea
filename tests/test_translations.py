"""bulkadmin's pages in French for a French browser: its own strings from its catalogue, beside
Django's admin in French; English stays the default."""

from __future__ import annotations

import gettext
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import translation

from bulkadmin.engine import JobRunner
from bulkadmin.jobs import create_job
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import url

pytestmark = pytest.mark.django_db(transaction=True)
CATALOGUE = Path(__file__).resolve().parent.parent / "bulkadmin" / "locale" / "fr" / "LC_MESSAGES"


def french(text: str) -> str:
    with translation.override("fr"):
        translated = str(translation.gettext(text))
    assert translated != text, f"no French for {text!r}"
    return translated


def test_the_catalogue_is_compiled_and_complete():
    """Every message of the .po in the committed .mo: msgfmt leaves out the untranslated and
    fuzzy ones, so the counts agree only when all are translated and compiled."""
    po = (CATALOGUE / "django.po").read_text(encoding="utf-8")
    entries = po.split("\n\n")[1:]
    assert "#, fuzzy" not in po
    with (CATALOGUE / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
    msgids = {key[0] if isinstance(key, tuple) else key for key in compiled} - {""}
    assert len(msgids) == len(entries)


def test_a_french_browser_gets_the_pages_in_french(super_client, write_file, admin_user_):
    fr = {"HTTP_ACCEPT_LANGUAGE": "fr"}
    upload = super_client.get(url("add"), **fr).content.decode()
    assert french("Import a file") in upload and french("Worker processes") in upload
    assert "Ajouter" in super_client.get(reverse("admin:index"), **fr).content.decode()  # Django's own

    path = write_file("u.csv", "username\nann\nboom1\n")
    job, _ = create_job(path, path.name, user=admin_user_)
    assert job is not None
    job = JobRunner(job.pk, workers=1).run()
    page = super_client.get(url("change", job.pk), **fr).content.decode()
    assert french("Finished with errors") in page and french("Revert this job") in page
    confirm = super_client.get(url("revert", job.pk), **fr).content.decode()
    assert french("Are you sure?") in confirm and french("Yes, revert it") in confirm

    Group.objects.create(name="Support")
    form = super_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "bulkadmin_change", "index": "0", "_selected_action": [str(admin_user_.pk)]},
        **fr,
    ).content.decode()
    assert french("New values") in form and french("Change them") in form

    # the report's row errors, from the importer, in French too
    from django.core.files.uploadedfile import SimpleUploadedFile

    report = super_client.post(
        url("add"),
        {
            "file": SimpleUploadedFile("bad.csv", b"username,is_active\n,maybe\n"),
            "importer": "bulkadmin.importers.users.UserImporter",
        },
        **fr,
    ).content.decode()
    assert french("This field is required.") in report

    english = super_client.get(url("add")).content.decode()
    assert "Import a file" in english
