"""No markup from a file ever reaches a page unescaped: values, headers, file names, error texts.

Every page a file's content can reach is fetched, and each must show the hostile text escaped:
present as ``&lt;script&gt;…``, absent as a tag. The browser test runs the same pages in
Chromium and checks that no script from the file runs.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from bulkadmin.models import ImportRow
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import make_job, settle, url

pytestmark = pytest.mark.django_db

#: Hostile texts, and how each must appear once escaped by the page.
SCRIPT = '<script>alert("csv")</script>'
IMG = '"><img src=x onerror=alert(1)>'
ESCAPED = {
    SCRIPT: "&lt;script&gt;alert(&quot;csv&quot;)&lt;/script&gt;",
    IMG: "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;",
}
HOSTILE_NAME = "<img src=x onerror=alert(3)>.csv"  # no slash: it would be cut as a path
HOSTILE_NAME_ESCAPED = "&lt;img src=x onerror=alert(3)&gt;.csv"
TAGS = ("<script>alert(", "<img src=x", "<b onmouseover", "<b_onmouseover")


def assert_escaped(html: str, *texts: str) -> None:
    for tag in TAGS:
        assert tag not in html, f"{tag!r} reached the page unescaped"
    for text in texts:
        assert ESCAPED[text] in html, f"{text!r} is not shown (escaped) on the page"


def hostile_csv() -> str:
    return (
        "username,first_name,last_name,password\n"
        f'ann,"{SCRIPT.replace(chr(34), chr(34) * 2)}","{IMG.replace(chr(34), chr(34) * 2)}",\n'
        f"<script>alert(2)</script>,Bad,Name,\n"
        f'boom1,"{SCRIPT.replace(chr(34), chr(34) * 2)}",x,Secret-Pass-123\n'
    )


def upload(client, content: str, name: str = "users.csv"):
    payload = {
        "file": SimpleUploadedFile(name, content.encode()),
        "importer": "bulkadmin.importers.users.UserImporter",
    }
    return client.post(url("add"), payload)


@pytest.fixture
def hostile_job(write_file, importer_user):
    """A job from a hostile file whose row 3 failed with an error quoting the hostile value."""
    path = write_file("h.csv", hostile_csv().replace("<script>alert(2)</script>,Bad,Name,\n", ""))
    job = make_job(path, user=importer_user)
    job.source_name = HOSTILE_NAME
    job.save(update_fields=["source_name"])
    return settle(job, {3: {"first_name": [f"RuntimeError: refused {SCRIPT}"], "last_name": [IMG]}})


def test_the_report_escapes_values_and_the_file_name(staff_client):
    response = upload(staff_client, hostile_csv(), name=HOSTILE_NAME)
    assert response.status_code == 200
    html = response.content.decode()
    assert_escaped(html, SCRIPT, IMG)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html  # the invalid username, in the errors
    assert HOSTILE_NAME_ESCAPED in html


def test_a_hostile_header_is_escaped_in_the_mapping_step(staff_client):
    response = upload(staff_client, "username,<b onmouseover=alert(1)>x</b>\nann,1\n")
    assert response.status_code == 200
    html = response.content.decode()
    assert_escaped(html)
    # an unknown column leads to the mapping step, which shows the header as written
    assert "&lt;b onmouseover=alert(1)&gt;x&lt;/b&gt;" in html


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(lambda job, row: url("change", job.pk), id="job page"),
        pytest.param(lambda job, row: url("change", job.pk) + "?q=" + SCRIPT, id="failed rows search"),
        pytest.param(lambda job, row: url("row", job.pk, row.pk), id="row edit"),
        pytest.param(lambda job, row: url("changelist") + "?whose=all", id="job list"),
        pytest.param(lambda job, row: url("history", job.pk), id="history"),
        pytest.param(lambda job, row: url("delete", job.pk), id="delete confirmation"),
    ],
)
def test_job_pages_escape_what_came_from_the_file(super_client, hostile_job, page):
    row = ImportRow.objects.get(job=hostile_job, number=3)
    response = super_client.get(page(hostile_job, row))
    assert response.status_code == 200
    html = response.content.decode()
    assert_escaped(html)
    assert HOSTILE_NAME_ESCAPED in html  # the file name


def test_the_job_page_shows_hostile_values_and_errors_escaped(staff_client, hostile_job):
    html = staff_client.get(url("change", hostile_job.pk)).content.decode()
    assert_escaped(html, SCRIPT, IMG)
    assert "RuntimeError: refused &lt;script&gt;" in html


def test_the_row_form_escapes_values_and_its_errors(staff_client, hostile_job):
    row = ImportRow.objects.get(job=hostile_job, number=3)
    edit = url("row", hostile_job.pk, row.pk)
    assert_escaped(staff_client.get(edit).content.decode(), SCRIPT, IMG)
    response = staff_client.post(edit, {"username": SCRIPT, "first_name": SCRIPT, "last_name": IMG})
    assert response.status_code == 200  # refused: the username is invalid
    assert_escaped(response.content.decode(), SCRIPT, IMG)


def test_the_progress_json_carries_text_not_markup(staff_client, hostile_job):
    response = staff_client.get(url("progress", hostile_job.pk))
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_downloads_are_attachments_never_pages(staff_client, hostile_job, file_format):
    response = staff_client.get(url("download", hostile_job.pk, file_format))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert "html" not in response["Content-Type"]
    assert "<script>" not in response["Content-Disposition"]
    response.close()  # what the web server does once it has sent the stream


@pytest.mark.parametrize("value", [" =1+1", "\u00a0=1+1", "\n=1+1", "\t=1", "  +1-555"])
def test_a_formula_behind_whitespace_is_escaped_too(value):
    """Before: only the first character was checked, so these reached the download as formulas."""
    from bulkadmin.fixit import escape_formula, unescape_formula

    assert escape_formula(value) == "'" + value
    assert unescape_formula(escape_formula(value)) == value
    assert escape_formula(" plain") == " plain"
