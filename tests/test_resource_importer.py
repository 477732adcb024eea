"""A django-import-export ``ModelResource`` run by the engine: its widgets and row hooks in the
workers, per row, through save(); ``before_import``/``after_import`` once per job."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count
from import_export import resources

from bulkadmin.engine import JobRunner
from bulkadmin.importers import ImportContext
from bulkadmin.importers.resource import ResourceImporter
from bulkadmin.jobs import create_job
from bulkadmin.models import JobStatus
from bulkadmin.validation import validate_file
from tests.testapp.importers import BookResourceImporter
from tests.testapp.models import Author, Book, SignalRecord, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def test_columns_come_from_the_resource():
    assert BookResourceImporter.column_names() == ["isbn", "title", "author", "tags", "published"]
    assert BookResourceImporter.key_column == "isbn"
    assert BookResourceImporter.get_model() is Book


def test_widgets_validate_each_row_and_unknown_objects_are_row_errors(write_file):
    Author.objects.create(name="Le Guin")
    Tag.objects.create(name="classic")
    Book.objects.create(isbn="1", title="Old", author=Author.objects.get())
    path = write_file(
        "b.csv",
        "isbn,title,Author,Tags,published\n"
        "2,ok,Le Guin,classic,2020-01-02\n"
        "3,bad date,Le Guin,,yesterday\n"
        "4,who,Nobody,,\n"
        "1,exists,Le Guin,,\n",
    )
    report = validate_file(path, path.name, BookResourceImporter(ImportContext.for_command_line({})))
    errors = {(e.row, e.column): e.message for e in report.errors}
    assert set(errors) == {(3, "published"), (4, "author"), (5, "isbn")}
    assert errors[(4, "author")] == "No author “Nobody”."
    assert "already exists" in errors[(5, "isbn")] and report.exists == 1


def test_a_resource_runs_on_two_workers_through_save_with_job_hooks_once(write_file, knobs):
    knobs(record_signals="1")
    Author.objects.create(name="Le Guin")
    Tag.objects.bulk_create([Tag(name="classic"), Tag(name="space")])
    lines = [f"{1000 + i},  book {i} ,Le Guin,classic;space,2021-03-0{1 + i % 9}" for i in range(250)]
    path = write_file("b.csv", "isbn,title,Author,Tags,published\n" + "\n".join(lines) + "\n")
    job, report = create_job(path, path.name, importer_path=BookResourceImporter.dotted_path())
    assert job is not None, report.file_error
    job = JobRunner(job.pk, workers=2, chunk_size=20).run()
    assert job.status == JobStatus.SUCCEEDED, job.error
    book = Book.objects.get(isbn="1007")
    assert book.title == "BOOK 7"  # before_import_row ran
    assert book.author.name == "Le Guin" and sorted(book.tags.values_list("name", flat=True)) == [
        "classic",
        "space",
    ]
    posts = SignalRecord.objects.filter(signal="post")
    assert (
        posts.count() == 250 and not posts.values("username").annotate(n=Count("id")).filter(n__gt=1).exists()
    )
    assert len(set(posts.values_list("pid", flat=True))) == 2
    assert list(SignalRecord.objects.filter(signal="imp_start").values_list("username", flat=True)) == [
        "isbn,title,Author,Tags,published"
    ]
    assert list(SignalRecord.objects.filter(signal="imp_end").values_list("username", flat=True)) == ["250"]


def test_options_that_skip_save_are_refused_clearly():
    class BulkResource(resources.ModelResource):
        class Meta:
            model = Book
            use_bulk = True

    with pytest.raises(ImproperlyConfigured, match="use_bulk"):
        type("BulkImporter", (ResourceImporter,), {"resource_class": BulkResource})
