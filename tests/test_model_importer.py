"""``ModelImporter`` on models the tests define: a foreign key, a many-to-many, choices, a date,
a decimal, update mode, and a multi-table child, imported by real pool workers through save()."""

from __future__ import annotations

import sys
import threading
from datetime import date
from decimal import Decimal

import pytest
from django.db.models import Count

from bulkadmin.engine import JobRunner
from bulkadmin.importers import ImportContext
from bulkadmin.jobs import create_job
from bulkadmin.models import JobStatus
from bulkadmin.validation import validate_file
from tests.conftest import in_threads
from tests.testapp.importers import BookImporter, RestaurantModelImporter
from tests.testapp.models import Author, Book, Place, Restaurant, SignalRecord, Tag

pytestmark = pytest.mark.django_db(transaction=True)

BOOKS = BookImporter.dotted_path()
HEADER = "ISBN,Title,Author,Tags,Genre,Published,Price,In print\n"


def errors_of(report) -> list[tuple[int, str, str]]:
    return [(e.row, e.column, e.message) for e in report.errors]


def validate(path, update: bool = False):
    importer = BookImporter(ImportContext.for_command_line({"update_existing": update}))
    return validate_file(path, path.name, importer)


def run(path, **options):
    job, report = create_job(path, path.name, importer_path=BOOKS, options=options)
    assert job is not None, report.file_error
    return JobRunner(job.pk, workers=2).run()


def test_columns_labels_and_help_come_from_the_model():
    columns = {c.name: c for c in BookImporter.columns}
    assert list(columns) == ["isbn", "title", "author", "tags", "genre", "published", "price", "in_print"]
    assert [c for c in columns if columns[c].required] == ["isbn", "title", "author"]
    assert "One of: fic, sci." in columns["genre"].help_text
    assert "The author by its name." in columns["author"].help_text
    assert "Each tag by its name, separated by “;”." in columns["tags"].help_text
    assert "ISBN" in BookImporter.column_labels()["isbn"]  # the header "ISBN" matches by verbose name
    assert BookImporter.key_column == "isbn"


def test_every_cell_is_cleaned_as_a_form_would_and_related_objects_are_checked(
    write_file, django_assert_max_num_queries
):
    Author.objects.create(name="Ursula K. Le Guin")
    Tag.objects.create(name="classic")
    Book.objects.create(isbn="9780000000001", title="Old", author=Author.objects.get())
    path = write_file(
        "books.csv",
        HEADER
        + "9780000000002,Ok,Ursula K. Le Guin,classic,Science,2024-01-31 00:00:00,12.50,no\n"
        + "9780000000003,Bad date,Ursula K. Le Guin,,fic,31/31/2024,,\n"
        + "9780000000004,Bad genre,Ursula K. Le Guin,,poetry,,,\n"
        + "9780000000005,Who,Nobody Known,nope,,,,\n"
        + "9780000000006,Price,Ursula K. Le Guin,,,,12.345,\n"
        + "9780000000001,Exists,Ursula K. Le Guin,,,,,\n"
        + "9780000000002,Twice,Ursula K. Le Guin,,,,,\n"
        + ",No isbn,Ursula K. Le Guin,,,,,maybe\n",
    )
    with django_assert_max_num_queries(4):  # authors, tags, existing isbns: per batch, not per row
        report = validate(path)
    assert errors_of(report) == [
        (3, "published", "Enter a valid date. Found “31/31/2024”."),
        (4, "genre", "Not one of the choices (fic, sci). Found “poetry”."),
        (5, "author", "Unknown author “Nobody Known”."),
        (5, "tags", "Unknown tag “nope”."),
        (6, "price", "Ensure that there are no more than 2 decimal places. Found “12.345”."),
        (7, "isbn", "A book with the isbn “9780000000001” already exists."),
        (8, "isbn", "Duplicate of row 2."),
        (9, "isbn", "This field is required."),
        (9, "in_print", "Not a yes/no value; use true or false. Found “maybe”."),
    ]
    assert report.exists == 1


def test_rows_are_saved_through_save_with_related_objects_by_two_workers(write_file, knobs):
    knobs(record_signals="1")
    le_guin = Author.objects.create(name="Ursula K. Le Guin")
    Tag.objects.bulk_create([Tag(name="classic"), Tag(name="space")])
    lines = [
        f"97800000{i:05d},The Book {i},Ursula K. Le Guin,classic;space,Science,2024-02-0{1 + i % 9},9.99,yes"
        for i in range(300)
    ]
    job = run(write_file("books.csv", HEADER + "\n".join(lines) + "\n"))
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert Book.objects.count() == 300
    book = Book.objects.get(isbn="9780000000007")
    assert (book.author, book.genre, book.published, book.price, book.in_print) == (
        le_guin,
        "sci",
        date(2024, 2, 8),
        Decimal("9.99"),
        True,
    )
    assert book.title_sort == "book 7"  # save() ran
    assert sorted(book.tags.values_list("name", flat=True)) == ["classic", "space"]
    posts = SignalRecord.objects.filter(signal="post")
    assert (
        posts.count() == 300 and not posts.values("username").annotate(n=Count("id")).filter(n__gt=1).exists()
    )
    assert len(set(posts.values_list("pid", flat=True))) == 2  # both workers saved books


def test_update_mode_finds_objects_by_key_and_a_blank_cell_leaves_the_value(write_file, knobs):
    author = Author.objects.create(name="A")
    Author.objects.create(name="B")
    old, new = Tag.objects.create(name="old"), Tag.objects.create(name="new")
    book = Book.objects.create(isbn="1", title="Kept", author=author, price=Decimal("5.00"), genre="sci")
    book.tags.add(old)
    path = write_file("u.csv", "isbn,title,author,tags,price,genre\n1,,B,new,,\n2,Fresh,A,,,\n")
    knobs(record_signals="1")
    job = run(path, update_existing=True)
    assert job.status == JobStatus.SUCCEEDED, job.error
    book.refresh_from_db()
    assert (book.title, book.author.name, book.price, book.genre) == ("Kept", "B", Decimal("5.00"), "sci")
    assert list(book.tags.all()) == [new]
    assert Book.objects.get(isbn="2").title == "Fresh"
    assert sorted(SignalRecord.objects.values_list("username", "signal")) == [("1", "update"), ("2", "post")]


def test_a_multi_table_child_saves_its_parent_and_its_many_to_many(write_file):
    Tag.objects.create(name="cosy")
    path = write_file("r.csv", "name,city,cuisine,tags\nChez A,Lyon,french,cosy\nChez B,Paris,thai,\n")
    job, _ = create_job(path, path.name, importer_path=RestaurantModelImporter.dotted_path())
    assert job is not None
    job = JobRunner(job.pk, workers=2).run()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert Place.objects.count() == 2 and Restaurant.objects.get(name="Chez A").slug == "chez-a"
    assert list(Restaurant.objects.get(name="Chez A").tags.values_list("name", flat=True)) == ["cosy"]


def test_threads_sharing_a_fresh_importer_all_clean_their_first_rows():
    # A worker's threads share its importer and fill its field caches on their first rows. A
    # thread that found a field's form field cached before its validators got a KeyError, and
    # its row failed ("preparing it raised KeyError"); seen under --threads 16.
    row = {
        "isbn": "978-0", "title": "Dune", "author": "Frank", "tags": "sf",
        "genre": "sci", "published": "1965-08-01", "price": "9.50", "in_print": "yes",
    }  # fmt: skip
    failures: list[BaseException] = []
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to hit the window
    try:
        for attempt in range(60):
            fresh = type(f"FreshBooks{attempt}", (BookImporter,), {"__module__": __name__})
            importer = fresh(ImportContext.for_command_line({}))
            start = threading.Barrier(8)

            def clean(importer=importer, start=start) -> None:
                start.wait(timeout=30)
                importer.clean_row(row)

            failures += in_threads(clean, 8, timeout=30)
    finally:
        sys.setswitchinterval(previous)
    assert failures == []
