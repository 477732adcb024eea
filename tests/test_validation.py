"""validate_file with the users importer: every message, no writes, no signals, few queries."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.test.utils import CaptureQueriesContext

from bulkadmin import validation
from bulkadmin.importers.base import NON_FIELD, ImportContext
from bulkadmin.importers.users import PRIVILEGE_MESSAGE, UserImporter
from bulkadmin.parsing import RawRow
from bulkadmin.validation import MASK, validate_file

User = get_user_model()
INVALID_USERNAME = (
    "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
)
pytestmark = pytest.mark.django_db


def validate(path, *, user=None, update=False):
    """Validate as ``user`` would, or (no user) as the command line."""
    options = {"update_existing": update}
    context = ImportContext.for_person(user, options) if user else ImportContext.for_command_line(options)
    return validate_file(path, path.name, UserImporter(context))


def errors_of(report):
    return [(e.row, e.column, e.message) for e in report.errors]


def only_error(write_file, content, **kwargs):
    report = validate(write_file("u.csv", content), **kwargs)
    assert report.file_error == ""
    assert report.invalid == 1, errors_of(report)
    return errors_of(report)


def test_valid_file(write_file):
    Group.objects.create(name="Editors")
    report = validate(
        write_file(
            "u.csv",
            "username,email,first_name,last_name,password,is_active,is_staff,is_superuser,groups\n"
            "ann,Ann@EXAMPLE.COM,Ann,Lee,Correct-Horse-42,yes,no,0,Editors\n"
            "bob,,,,,,,,\n",
        )
    )
    assert (report.file_error, report.total, report.valid, report.invalid, report.errors) == ("", 2, 2, 0, [])
    assert report.is_valid
    assert report.format == "csv"


def test_clean_row_types_and_blank_booleans_are_left_alone():
    importer = UserImporter(ImportContext.for_command_line({}))
    cleaned = importer.clean_row(
        {
            "username": " ann ",
            "email": "Ann@EXAMPLE.COM",
            "is_active": "",
            "is_staff": "Y",
            "groups": "a; b;a;",
        }
    )
    assert cleaned == {"username": "ann", "email": "Ann@example.com", "is_staff": True, "groups": ["a", "b"]}
    assert "is_active" not in cleaned  # blank: the model default for new users, unchanged for updates


def test_username_is_nfkc_normalized_like_the_admin_form():
    assert UserImporter().clean_row({"username": "ｊｏｅ"})["username"] == "joe"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("username,email\n,a@example.com\n", (2, "username", "This field is required.")),
        (
            "username\nbad user!\n",
            (
                2,
                "username",
                f"{INVALID_USERNAME} Found “bad user!”.",
            ),
        ),
        (
            "username\n<script>alert(1)</script>\n",
            (
                2,
                "username",
                f"{INVALID_USERNAME} Found “<script>alert(1)</script>”.",
            ),
        ),
        (
            "username\n" + "u" * 151 + "\n",
            (
                2,
                "username",
                "Ensure this value has at most 150 characters (it has 151). Found “" + "u" * 39 + "…”.",
            ),
        ),
        (
            "username,email\nann,not-an-email\n",
            (2, "email", "Enter a valid email address. Found “not-an-email”."),
        ),
        (
            "username,first_name\nann," + "f" * 151 + "\n",
            (
                2,
                "first_name",
                "Ensure this value has at most 150 characters (it has 151). Found “" + "f" * 39 + "…”.",
            ),
        ),
        (
            "username,is_active\nann,maybe\n",
            (2, "is_active", "Not a yes/no value; use true or false. Found “maybe”."),
        ),
        ("username,is_staff\nann,2\n", (2, "is_staff", "Not a yes/no value; use true or false. Found “2”.")),
        ("username,groups\nann,Nobody\n", (2, "groups", "Unknown group “Nobody”.")),
        (
            "username,password\nann,123\n",
            (2, "password", "This password is too short. It must contain at least 8 characters."),
        ),
        ("username,password\nann,12345678901\n", (2, "password", "This password is entirely numeric.")),
        ("username,password\nann,password\n", (2, "password", "This password is too common.")),
        (
            "username,password\nannabelle,annabelle1\n",
            (2, "password", "The password is too similar to the username."),
        ),
        ("username,password\nann," + "p" * 4097 + "\n", (2, "password", "The password is too long.")),
    ],
)
def test_row_messages(write_file, content, expected):
    from django.conf import settings
    from django.test import override_settings

    with override_settings(BULKADMIN={**settings.BULKADMIN, "MAX_FIELD_LENGTH": 5000}):
        assert expected in only_error(write_file, content)


def test_missing_username_column_is_a_file_error(write_file):
    report = validate(write_file("u.csv", "email\na@example.com\n"))
    assert report.file_error == "Row 1: Required column missing from the header: username."


def test_duplicates_in_the_file_are_case_insensitive(write_file):
    report = validate(write_file("u.csv", "username\nann\nbob\nANN\nAnn\nbob\n"))
    assert errors_of(report) == [
        (4, "username", "Duplicate of row 2."),
        (5, "username", "Duplicate of row 2."),
        (6, "username", "Duplicate of row 3."),
    ]
    assert (report.valid, report.invalid) == (2, 3)


def test_existing_username_is_refused_unless_updating(write_file):
    User.objects.create_user("ann")
    path = write_file("u.csv", "username,first_name\nann,Ann\nbob,Bob\n")
    assert errors_of(validate(path)) == [(2, "username", "A user with the username “ann” already exists.")]
    assert errors_of(validate(path, update=True)) == []


@pytest.mark.parametrize("column", ["is_staff", "is_superuser"])
def test_only_superusers_and_the_command_line_grant_privileges(write_file, column):
    staff = User.objects.create_user("staffer", is_staff=True)
    boss = User.objects.create_superuser("boss")
    path = write_file("u.csv", f"username,{column}\nann,true\nbob,false\n")
    assert errors_of(validate(path, user=staff)) == [(2, column, PRIVILEGE_MESSAGE)]
    assert errors_of(validate(path, user=boss)) == []
    assert errors_of(validate(path, user=None)) == []


def test_non_superuser_may_not_update_an_existing_staff_user(write_file):
    User.objects.create_user("admin2", is_staff=True)
    User.objects.create_user("plain")
    staff = User.objects.create_user("staffer", is_staff=True)
    path = write_file("u.csv", "username,first_name\nadmin2,X\nplain,Y\n")
    assert errors_of(validate(path, user=staff, update=True)) == [(2, "username", PRIVILEGE_MESSAGE)]
    assert errors_of(validate(path, user=User.objects.create_superuser("boss"), update=True)) == []
    assert errors_of(validate(path, update=True)) == []


def test_several_errors_on_one_row_are_all_reported(write_file):
    errors = only_error(write_file, "username,email,is_active\nbad user!,nope,perhaps\n")
    assert {column for _, column, _ in errors} == {"username", "email", "is_active"}


def test_preview_masks_passwords(write_file):
    report = validate(write_file("u.csv", "username,password\nann,Correct-Horse-42\nbob,\n"))
    assert report.preview == [
        (2, {"username": "ann", "password": MASK}),
        (3, {"username": "bob", "password": ""}),
    ]
    assert "Correct-Horse-42" not in repr(report)


def test_preview_is_bounded(write_file, users_csv):
    report = validate(users_csv(50))
    assert len(report.preview) == validation.PREVIEW_ROWS


def test_parse_problems_are_row_errors_and_validation_goes_on(write_file):
    report = validate(write_file("u.csv", "username,email\nann,a@example.com,extra\nbad user!\ncyd\n"))
    assert errors_of(report) == [
        (
            2,
            NON_FIELD,
            "This row has 3 values but the header has 2 columns "
            "(is a value containing the delimiter missing its quotes?).",
        ),
        (
            3,
            "username",
            f"{INVALID_USERNAME} Found “bad user!”.",
        ),
    ]
    assert str(report.errors[0]).startswith("Row 2: This row has 3 values")
    assert str(report.errors[1]).startswith("Row 3, column “username”: Enter a valid username.")
    assert (report.total, report.valid) == (3, 1)


def test_errors_are_sorted_by_row_and_capped_at_the_lowest_rows(write_file, monkeypatch):
    monkeypatch.setattr(validation, "MAX_REPORTED_ERRORS", 5)
    monkeypatch.setattr(validation, "CHECK_BATCH", 50)
    User.objects.bulk_create([User(username=f"odd{i}") for i in range(1, 200, 2)])
    # Odd rows clash with existing users (found per batch, late); even rows fail at once.
    lines = [f"odd{i}" if i % 2 else f"bad user {i}" for i in range(1, 200)]
    report = validate(write_file("u.csv", "username\n" + "\n".join(lines) + "\n"))
    assert [e.row for e in report.errors] == [2, 3, 4, 5, 6]
    assert report.error_count == 199
    assert report.errors_truncated
    assert report.invalid == 199


def test_validation_writes_nothing_and_sends_no_signal(users_csv):
    Group.objects.create(name="Editors")
    User.objects.create_user("user0000003")
    fired = []

    def receiver(sender, **kwargs):
        fired.append(sender)

    signals = (pre_save, post_save, pre_delete, post_delete, m2m_changed)
    for signal in signals:
        signal.connect(receiver, dispatch_uid="test_validation_no_signal")
    try:
        before = User.objects.count(), Group.objects.count()
        with CaptureQueriesContext(connection) as queries:
            report = validate(users_csv(2500, bad=6, password=True, groups="Editors"), update=False)
    finally:
        for signal in signals:
            signal.disconnect(dispatch_uid="test_validation_no_signal")
    assert report.total == 2506
    assert report.invalid == 7  # the six bad rows and the existing user
    assert fired == []
    assert (User.objects.count(), Group.objects.count()) == before
    statements = [q["sql"].lstrip().split()[0].upper() for q in queries.captured_queries]
    assert set(statements) <= {"SELECT"}, statements


def test_queries_are_a_few_per_thousand_rows_not_one_per_row(users_csv, django_assert_max_num_queries):
    Group.objects.create(name="Editors")
    path = users_csv(5000, groups="Editors")
    with django_assert_max_num_queries(2 * 5 + 2):  # users and groups, once per batch of 1,000
        report = validate(path)
    assert (report.total, report.valid) == (5000, 5000)


def test_on_valid_receives_only_valid_rows_in_batches(write_file, monkeypatch):
    monkeypatch.setattr(validation, "CHECK_BATCH", 2)
    User.objects.create_user("taken")
    path = write_file(
        "u.csv", "username,password\nann,Correct-Horse-1\ntaken,\nbad user,\nbob,\ncyd,\nann,\n"
    )
    batches: list[list[RawRow]] = []
    invalid: list[RawRow] = []
    report = validate_file(
        path,
        "u.csv",
        UserImporter(ImportContext.for_command_line({})),
        on_valid=batches.append,
        on_invalid=invalid.append,
    )
    assert [[row.number for row in batch] for batch in batches] == [[2], [5, 6]]
    # the real value goes on, only the preview is masked
    assert batches[0][0].values["password"] == "Correct-Horse-1"
    assert report.valid == 3
    # each invalid row goes on too, with its values and every error, for the job to keep
    assert [(row.number, row.values["username"], list(row.errors)) for row in invalid] == [
        (3, "taken", ["username"]),
        (4, "bad user", ["username"]),
        (7, "ann", ["username"]),
    ]


def test_header_without_rows(write_file):
    assert validate(write_file("u.csv", "username\n\n\n")).file_error == "The file has a header but no rows."


def test_performance_sanity_twenty_thousand_rows(users_csv, django_assert_max_num_queries):
    """Large files validate in batches: the query count grows per thousand rows (no timing asserts)."""
    path = users_csv(20_000, bad=10)
    with django_assert_max_num_queries(2 * 21 + 2):
        report = validate(path)
    assert report.total == 20_010
    assert report.invalid == 10
    assert report.error_count >= 10


def test_group_names_match_as_staff_type_them_and_near_misses_get_a_suggestion(write_file):
    """Before: " support " did not find the group "Support"."""
    Group.objects.create(name="Support")
    Group.objects.create(name="Sales Team")
    path = write_file("u.csv", "username,groups\nann, support ;sales   team\nbob,Suport\ncyd,Marketing\n")
    assert errors_of(validate(path)) == [
        (3, "groups", "Unknown group “Suport”. Did you mean “Support”?"),
        (4, "groups", "Unknown group “Marketing”."),
    ]
    from bulkadmin.engine import JobRunner
    from bulkadmin.jobs import create_job

    job, _ = create_job(path, path.name)
    assert job is not None
    JobRunner(job.pk, workers=1).run()
    assert sorted(User.objects.get(username="ann").groups.values_list("name", flat=True)) == [
        "Sales Team",
        "Support",
    ]


def test_a_blank_groups_cell_leaves_an_updated_users_groups_alone(write_file):
    """Before: in update mode a blank groups cell removed every group from the user."""
    from bulkadmin.engine import JobRunner
    from bulkadmin.jobs import create_job

    support = Group.objects.create(name="Support")
    ann = User.objects.create_user("ann")
    ann.groups.add(support)
    path = write_file("u.csv", "username,first_name,groups\nann,Ann,\n")
    job, _ = create_job(path, path.name, options={"update_existing": True})
    assert job is not None
    JobRunner(job.pk, workers=1).run()
    ann.refresh_from_db()
    assert ann.first_name == "Ann" and list(ann.groups.all()) == [support]
