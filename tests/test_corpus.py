"""Every hostile file in tests/corpus gives its clear message and writes nothing.

The cases and their expected messages are in tests/corpus/cases.json, generated with the
files by tests/corpus/make_corpus.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from bulkadmin import conf
from bulkadmin.importers.users import UserImporter
from bulkadmin.jobs import create_job
from bulkadmin.models import ImportJob, ImportRow
from bulkadmin.parsing import ParseError, open_table
from bulkadmin.validation import validate_file

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
User = get_user_model()


def settings_for(case):
    from django.conf import settings

    return override_settings(BULKADMIN={**settings.BULKADMIN, **case.get("settings", {})})


def counts():
    return ImportJob.objects.count(), ImportRow.objects.count(), User.objects.count()


def test_the_corpus_is_large_and_every_file_is_there():
    assert len(CASES) >= 40
    on_disk = {p.name for p in (CORPUS / "files").iterdir()}
    assert on_disk == set(CASES)
    assert sum(1 for c in CASES.values() if c["kind"] != "ok") >= 40
    for name in CASES:
        assert (CORPUS / "files" / name).stat().st_size < 256 * 1024, name


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_file(name):
    case = CASES[name]
    path = CORPUS / "files" / name
    upload_name = case.get("upload_name", name)
    before = counts()
    with settings_for(case), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # openpyxl's notes about styles
        report = validate_file(path, upload_name, UserImporter())
        job, job_report = create_job(path, upload_name)

    if case["kind"] == "file":
        assert case["message"] in report.file_error, report.file_error
        assert "Traceback" not in report.file_error
        assert not report.is_valid
    elif case["kind"] == "row":
        assert report.file_error == ""
        messages = [(e.row, e.column, e.message) for e in report.errors]
        assert any(
            row == case["row"] and column == case["column"] and case["message"] in message
            for row, column, message in messages
        ), messages
        assert report.valid == case.get("valid_rows", 0)
    else:
        assert report.file_error == "", report.file_error
        assert report.errors == []
        assert report.valid == case["valid"]
        assert report.encoding == case.get("encoding", "")  # said when the file was not UTF-8

    if case["kind"] == "ok" or case.get("valid_rows"):
        assert job is not None
        assert job.total == report.valid
        assert "/" not in job.source_name  # the upload name is display-only, never a path
        assert User.objects.count() == before[2]  # validated and saved as a job, not imported
    else:
        assert job is None
        assert counts() == before
    assert job_report.file_error == report.file_error
    assert job_report.error_count == report.error_count


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["kind"] == "file"))
def test_corpus_file_errors_are_parse_errors(name):
    """open_table alone raises ParseError (or reads fine and leaves the error to validation)."""
    case = CASES[name]
    with settings_for(case), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            with open_table(
                CORPUS / "files" / name, case.get("upload_name", name), UserImporter.column_names()
            ) as table:
                for _ in table.rows:
                    pass
        except ParseError as exc:
            assert str(exc)
            assert not str(exc).startswith("Traceback")


def test_max_uncompressed_default_is_used():
    assert conf.get("MAX_UNCOMPRESSED_BYTES") == 200 * 1024 * 1024
