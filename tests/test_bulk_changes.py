"""Bulk changes through save(): ``bulkchange`` and ``changes.start_change`` run a change of many
objects as a job, with the model importer's validation and privilege rules, and a revert undoes
it."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from bulkadmin import changes
from bulkadmin.engine import JobRunner
from bulkadmin.importers.base import ImportContext
from bulkadmin.importers.users import GROUP_MESSAGE, PRIVILEGE_MESSAGE, UserImporter
from bulkadmin.models import ImportJob, ImportRow, JobKind, JobStatus
from tests.conftest import manage
from tests.testapp.importers import BookImporter
from tests.testapp.models import Author, Book, SignalRecord, Tag

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


def make_users(count: int, prefix: str = "user") -> None:
    User.objects.bulk_create(
        [User(username=f"{prefix}{i:04d}", first_name="First", password="!") for i in range(count)]
    )


def test_bulkchange_changes_each_matching_user_through_save_then_revertjob_undoes_it(knobs):
    support = Group.objects.create(name="Support")
    make_users(300)
    User.objects.create_user("bystander")
    knobs(record_changes="1")

    result = manage(
        "bulkchange", "auth.User", "--filter", "username__startswith=user", "--filter", "is_active=true",
        "--set", "is_active=false", "--set", "last_name=Moved", "--add", "groups=support",
        "--no-progress", "--workers", "2", "--chunk-size", "50",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    job = ImportJob.objects.get(kind=JobKind.CHANGE)
    assert f"Job {job.pk}: changing 300 users" in result.stdout
    assert (job.status, job.succeeded, job.failed) == (JobStatus.SUCCEEDED, 300, 0)
    changed = User.objects.filter(username__startswith="user")
    assert changed.filter(is_active=False, last_name="Moved", groups=support).count() == 300
    assert SignalRecord.objects.filter(signal="update").count() == 300  # save() for each
    assert User.objects.get(username="bystander").is_active

    result = manage("revertjob", str(job.pk), "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert changed.filter(is_active=True, last_name="", groups=None).count() == 300


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set", "is_active=maybe"], "is_active: Not a yes/no value"),
        (["--add", "groups=Nobody"], "Unknown group “Nobody”"),
        (["--set", "password=secret"], "password: This field cannot be changed in bulk"),
        (["--set", "username=x"], "username: This field cannot be changed in bulk"),
        (["--filter", "nosuch=1", "--set", "first_name=A"], "has no field 'nosuch'"),
        (
            ["--set", "first_name=A", "--all", "--importer", "tests.testapp.importers.BookImporter"],
            "cannot change",
        ),
    ],
)
def test_a_wrong_change_is_refused_naming_the_field_and_writes_nothing(arguments, message):
    make_users(3)
    args = ["--filter", "username__startswith=user"] if "--all" not in arguments else []
    result = manage("bulkchange", "auth.User", *args, *arguments)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not ImportJob.objects.exists()
    assert set(User.objects.values_list("first_name", flat=True)) == {"First"}


def test_no_filter_needs_all():
    result = manage("bulkchange", "auth.User", "--set", "first_name=A")
    assert result.returncode == 2 and "--all" in result.stderr


def test_a_staff_member_cannot_grant_privileges_or_groups_beyond_their_own():
    staff = User.objects.create_user("staff", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_user", "view_user"]))
    powerful = Group.objects.create(name="Admins")
    powerful.permissions.add(Permission.objects.get(codename="delete_user"))
    importer = UserImporter(ImportContext.for_person(staff, changes.Change().as_options()))

    assert changes.check(importer, changes.Change(set={"is_staff": "true"}), "user0001") == {
        "is_staff": [PRIVILEGE_MESSAGE]
    }
    assert changes.check(importer, changes.Change(add={"groups": ["admins"]}), "user0001") == {
        "groups": [GROUP_MESSAGE.format(name="Admins")]
    }
    assert "__all__" in changes.check(importer, changes.Change(), "user0001")


def test_a_staff_members_change_skips_staff_accounts_as_failed_rows():
    """The importer's rule, applied per object in the worker: only a superuser changes staff."""
    staff = User.objects.create_user("staff", is_staff=True)
    make_users(5)
    User.objects.filter(username="user0002").update(is_staff=True)
    change = changes.Change(set={"first_name": "Renamed"})
    job = changes.start_change(
        User.objects.filter(username__startswith="user"), UserImporter, change, user=staff
    )
    assert job is not None and job.total == 5
    job = JobRunner(job.pk, workers=1).run()
    assert (job.succeeded, job.failed) == (4, 1)
    assert User.objects.get(username="user0002").first_name == "First"
    (row,) = ImportRow.objects.filter(job=job)
    assert PRIVILEGE_MESSAGE in row.error_text and row.values["username"] == "user0002"


def test_a_bulk_change_of_books_adds_and_removes_tags_and_sets_a_foreign_key(knobs):
    old, new = Author.objects.create(name="Old"), Author.objects.create(name="New")
    keep, drop, _added = (Tag.objects.create(name=n) for n in ("keep", "drop", "add"))
    for i in range(30):
        book = Book.objects.create(isbn=f"97800000000{i:02d}", title=f"Book {i}", author=old)
        book.tags.add(keep, drop)
    change = changes.Change(
        set={"author": "New", "price": "9.50"}, add={"tags": ["add"]}, remove={"tags": ["drop"]}
    )
    assert changes.check(BookImporter(ImportContext(update_existing=True, trusted=True)), change, "x") == {}
    job = changes.start_change(Book.objects.all(), BookImporter, change, size=7)
    assert job is not None
    job = JobRunner(job.pk, workers=2).run()
    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 30)
    for book in Book.objects.all():
        assert (book.author, str(book.price)) == (new, "9.50")
        assert sorted(book.tags.values_list("name", flat=True)) == ["add", "keep"]

    from bulkadmin.reverts import start_revert

    revert, _ = start_revert(job)
    revert = JobRunner(revert.pk, workers=2).run()
    assert (revert.status, revert.succeeded) == (JobStatus.SUCCEEDED, 30)
    for book in Book.objects.all():
        assert (book.author, book.price) == (old, None)
        assert sorted(book.tags.values_list("name", flat=True)) == ["drop", "keep"]
