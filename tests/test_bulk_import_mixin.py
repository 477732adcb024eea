"""``BulkImportMixin``: the Import button on any changelist, the upload page bound to that
model's importers, the job list by model, and the demo's library imported end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from bulkadmin.engine import JobRunner
from bulkadmin.jobs import prepare_job
from bulkadmin.models import ImportJob, JobStatus
from mysite.library.importers import AuthorImporter, BookImporter
from mysite.library.models import Author, Book, EBook, Subject
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import IMPORT_PERMS, make_user, url

SAMPLES = Path(__file__).resolve().parent.parent / "mysite" / "sample"
BOOKS = reverse("admin:library_book_changelist")


def import_link(client, changelist: str) -> str | None:
    html = client.get(changelist).content.decode()
    marker = 'class="bulkadmin-importlink"'
    if marker not in html:
        return None
    start = html.rindex('href="', 0, html.index(marker)) + len('href="')
    return str(html[start : html.index('"', start)]).replace("&amp;", "&")


def test_the_import_button_sits_beside_add_and_leads_to_this_models_importers(super_client):
    link = import_link(super_client, BOOKS)
    assert link == url("add") + "?model=library.book"
    html = super_client.get(BOOKS).content.decode()
    tools = html[html.index('class="object-tools"') :]
    assert tools.index("bulkadmin-importlink") < tools.index('class="addlink"')  # Add stays, beside
    choices = super_client.get(link).context["adminform"].form.fields["importer"].choices
    assert [path for path, _label in choices] == [BookImporter.dotted_path()]


def test_the_import_button_shows_only_to_who_may_import_this_model(client, db):
    viewer = make_user("viewer", perms=("library.view_book",))
    client.force_login(viewer)
    assert import_link(client, BOOKS) is None  # may not import
    importer = make_user("jobs", perms=(*IMPORT_PERMS, "library.view_book"))
    client.force_login(importer)
    assert import_link(client, BOOKS) is None  # may import users, not add books
    librarian = make_user("librarian", perms=(*IMPORT_PERMS, "library.view_book", "library.add_book"))
    client.force_login(librarian)
    assert import_link(client, BOOKS) == url("add") + "?model=library.book"


def test_the_demo_user_admin_has_the_button(super_client):
    assert import_link(super_client, reverse("admin:auth_user_changelist")) == url("add") + "?model=auth.user"


def test_the_job_list_filters_by_model(super_client, admin_user_):
    ImportJob.objects.create(
        importer=BookImporter.dotted_path(), source_name="books.csv", created_by=admin_user_
    )
    ImportJob.objects.create(
        importer=AuthorImporter.dotted_path(), source_name="authors.csv", created_by=admin_user_
    )
    response = super_client.get(url("changelist") + "?model=library.book")
    assert [job.source_name for job in response.context["cl"].result_list] == ["books.csv"]
    assert "?model=library.author" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_demo_library_imports_its_sample_files_from_the_admin(client, tmp_path, private_data_dir):
    """Authors, subjects, books (a foreign key and a many-to-many) and e-books (a multi-table
    child), each from its changelist's Import button, through the engine."""
    root = make_user("root", superuser=True)
    client.force_login(root)
    for model, name, importer in [
        ("library.author", "authors.csv", "mysite.library.importers.AuthorImporter"),
        ("library.subject", "subjects.csv", "mysite.library.importers.SubjectImporter"),
        ("library.book", "books.csv", "mysite.library.importers.BookImporter"),
        ("library.ebook", "ebooks.csv", "mysite.library.importers.EBookImporter"),
    ]:
        with (SAMPLES / name).open("rb") as handle:
            response = client.post(url("add") + f"?model={model}", {"file": handle, "importer": importer})
        assert "confirm_form" in response.context, response.content.decode()[:2000]
        report = response.context["report"]
        client.post(url("confirm"), {"token": response.context["confirm_form"].initial["token"]})
        job = ImportJob.objects.get(source_name=name)
        prepare_job(job)
        job = JobRunner(job.pk, workers=2).run()
        assert job.succeeded == report.valid, job.error
    assert Author.objects.count() == 10 and Subject.objects.count() == 8
    assert Book.objects.filter(ebook__isnull=True).count() == 200 and EBook.objects.count() == 50
    books = ImportJob.objects.get(source_name="books.csv")
    assert books.status == JobStatus.FINISHED_WITH_ERRORS
    assert sorted(books.rows.values_list("number", flat=True)) == [202, 203]  # unknown author; a repeat
    ebook = EBook.objects.get(isbn="9790000000000")
    assert ebook.url.endswith("/1.epub") and ebook.subjects.count() == 1 and ebook.author.name


def test_an_import_export_admin_also_offers_its_resources_in_the_background(super_client):
    from tests.testapp.importers import BookResource

    changelist = reverse("admin:testapp_book_changelist")
    html = super_client.get(changelist).content.decode()
    assert "Import in the background" in html
    assert reverse("admin:testapp_book_import") in html  # django-import-export's own button stays
    link = import_link(super_client, changelist)
    assert link == url("add") + "?model=testapp.book"
    choices = [
        path for path, _label in super_client.get(link).context["adminform"].form.fields["importer"].choices
    ]
    assert f"{BookResource.__module__}.BookResourceImporter" in choices
