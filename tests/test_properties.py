"""Property tests: whatever bytes or text arrive, parsing and validation end in a clean Report."""

from __future__ import annotations

import csv
import io
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkadmin.importers.users import UserImporter
from bulkadmin.parsing import ParseError, open_table
from bulkadmin.validation import validate_file

COLUMNS = UserImporter.column_names()
NAMES = st.sampled_from(["upload.csv", "upload.tsv", "upload.json", "upload.xlsx", "upload", "x.txt"])
common = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
pytestmark = pytest.mark.django_db


def write(data: bytes, name: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="bulkadmin-prop-"))
    path = directory / Path(name).name
    path.write_bytes(data)
    return path


def check_report(report) -> None:
    assert isinstance(report.file_error, str)
    assert report.total >= 0
    assert 0 <= report.invalid <= report.total
    assert report.valid == report.total - report.invalid
    assert report.error_count >= len(report.errors)
    assert all(e.row >= 2 for e in report.errors)
    assert [e.row for e in report.errors] == sorted(e.row for e in report.errors)
    if report.file_error:
        assert not report.is_valid
        assert "Traceback" not in report.file_error


def interesting_bytes():
    fragments = st.sampled_from(
        [
            b"username",
            b"email",
            b",",
            b";",
            b"\t",
            b'"',
            b"\n",
            b"\r",
            b"\r\n",
            b"\x00",
            b"\xef\xbb\xbf",
            b"\xff\xfe",
            b"\xe9",
            b"[",
            b"]",
            b"{",
            b"}",
            b":",
            b"PK\x03\x04",
            b"ann",
            b"is_staff",
            b"true",
        ]
    )
    return st.one_of(st.binary(max_size=300), st.lists(fragments, max_size=40).map(b"".join))


@common
@given(data=interesting_bytes(), name=NAMES)
def test_arbitrary_bytes_give_a_report_never_an_exception(data, name):
    path = write(data, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_report(validate_file(path, name, UserImporter()))
        try:
            with open_table(path, name, COLUMNS) as table:
                for row in table.rows:
                    assert row.number >= 2
                    assert set(row.values) == set(table.headers)
        except ParseError as exc:
            assert str(exc)


text_cells = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
)
# Two columns at least: a one-column file has no delimiter to sniff.
headers = st.lists(st.sampled_from(COLUMNS), min_size=2, max_size=4, unique=True)


@common
@given(
    header=headers,
    rows=st.lists(st.lists(text_cells, max_size=6), max_size=12),
    delimiter=st.sampled_from([",", ";", "\t"]),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_any_rows_written_as_csv_read_back_or_explain(header, rows, delimiter, ending):
    out = io.StringIO()
    # Python's writer quotes a newline only if it is part of its own line terminator.
    if ending == "\r\n":
        writer = csv.writer(out, delimiter=delimiter, lineterminator=ending, quoting=csv.QUOTE_MINIMAL)
    else:
        writer = csv.writer(out, delimiter=delimiter, lineterminator=ending, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    path = write(out.getvalue().encode("utf-8"), "upload.csv")
    report = validate_file(path, "upload.csv", UserImporter())
    check_report(report)
    nonblank = [r for r in rows if any(c.strip() for c in r)]
    if report.file_error:
        # Only a header problem or an empty file may stop a well-formed CSV.
        assert report.file_error.startswith(
            ("Row 1", "The file has a header but no rows", "The file has no header")
        )
    else:
        assert report.total == len(nonblank)


@common
@given(
    rows=st.lists(
        st.dictionaries(
            st.sampled_from(COLUMNS),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(),
                st.floats(),
                text_cells,
                st.lists(text_cells, max_size=3),
            ),
            max_size=5,
        ),
        max_size=8,
    )
)
def test_any_json_rows_give_a_report(rows):
    import json

    path = write(json.dumps(rows).encode(), "upload.json")
    check_report(validate_file(path, "upload.json", UserImporter()))
