"""Reverting a job: what a revert would do (its confirmation page), and the revert job itself.

A revert is a job of its own (``JobKind.REVERT``), run by ``RevertImporter`` on the engine,
with one row per object the reverted job created or changed, read from the reverted job's
chunks (``object_pks`` and ``undo``, written with the objects). Starting one is idempotent:
while a revert of the job is unfinished, or once one has undone everything, asking again
gives that one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils.translation import gettext as _

from bulkadmin import vendors
from bulkadmin.importers.base import Importer
from bulkadmin.importers.registry import get_importer_class
from bulkadmin.importers.revert import DELETE, RESTORE
from bulkadmin.jobs import batched, fill_job
from bulkadmin.keyset import in_batches
from bulkadmin.models import ImportChunk, ImportJob, JobKind, JobStatus, StartedVia, Statuses
from bulkadmin.parsing import RawRow
from bulkadmin.vendors import write_turn

#: Objects of each kind the confirmation page names.
SAMPLE = 20


class NotRevertible(Exception):
    """Why a job cannot be reverted, for staff to read."""


def why_not_revertible(job: ImportJob) -> str | None:
    try:
        get_importer_class(job.importer)
    except Exception:
        return _("This job's importer is no longer configured; it cannot be reverted.")
    if job.kind == JobKind.REVERT:
        return _("A revert cannot itself be reverted.")
    if not job.records_undo:
        return _("This job ran before jobs recorded what they changed; it cannot be reverted.")
    if job.status not in Statuses.FINAL:
        return _("A job can be reverted once it has finished or been cancelled.")
    if not job.succeeded:
        return _("This job created or changed nothing.")
    return None


@dataclass
class RevertPlan:
    """What reverting a job would do: counts, and the first few objects of each kind."""

    model: type[models.Model]
    deletes: int = 0
    restores: int = 0
    #: Changes the job's importer did not record: they stay.
    unrecorded: int = 0
    delete_sample: list[str] = field(default_factory=list)
    restore_sample: list[str] = field(default_factory=list)

    def objects(self, pks: list[str]) -> list[models.Model]:
        pk_field = self.model._meta.pk
        assert pk_field is not None
        keys = []
        for text in pks:
            try:
                keys.append(pk_field.to_python(text))
            except ValidationError:
                continue  # not a key of this model (a record from elsewhere): not shown
        found = self.model._default_manager.in_bulk(keys)
        return [found[key] for key in keys if key in found]

    @property
    def to_delete(self) -> list[models.Model]:
        return self.objects(self.delete_sample)

    @property
    def to_restore(self) -> list[models.Model]:
        return self.objects(self.restore_sample)


def _rows(job: ImportJob) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(row number, object pk, undo record)`` of each row that left an object, chunk by chunk;
    the record is ``{}`` when the row's importer did not say what it did."""
    chunks = ImportChunk.objects.filter(job=job).values_list("number", "object_pks", "undo")
    for _chunk, object_pks, undo in in_batches(chunks, "number", 50):
        for number, pk in sorted(object_pks.items(), key=lambda item: int(item[0])):
            if pk:  # (an importer's row that deleted its object leaves none)
                yield int(number), pk, undo.get(number) or {}


def _revert_values(pk: str, record: dict[str, Any]) -> dict[str, Any]:
    """A revert row's values: the object, and delete it, or restore it (with its record, a
    dict where a file's row holds text: chunks and failed rows keep JSON)."""
    if record.get("created"):
        return {"object": pk, "action": DELETE}
    return {"object": pk, "action": RESTORE, "undo": record}


def plan(job: ImportJob) -> RevertPlan:
    importer_cls = get_importer_class(job.importer)
    result = RevertPlan(importer_cls.get_model())
    for _number, pk, record in _rows(job):
        if record.get("created"):
            result.deletes += 1
            if len(result.delete_sample) < SAMPLE:
                result.delete_sample.append(pk)
        elif "before" in record:
            result.restores += 1
            if len(result.restore_sample) < SAMPLE:
                result.restore_sample.append(pk)
        else:
            result.unrecorded += 1
    return result


def latest_revert(job: ImportJob) -> ImportJob | None:
    return job.reverted_by.order_by("-pk").first()


def start_revert(job: ImportJob, user: Any = None, site_url: str = "") -> tuple[ImportJob, bool]:
    """The revert job for ``job``: ``(revert, created)``. ``user`` None: the command line.

    A job has one revert: asking again returns it, to follow or resume. Objects it could not
    revert are its failed rows, rerun as any job's are (once, say, their blocker is gone);
    a second revert from all the job's rows would undo what happened since to the others.
    Raises ``NotRevertible``.
    """
    reason = why_not_revertible(job)
    if reason:
        raise NotRevertible(reason)
    with write_turn(), transaction.atomic():
        # Two clicks, or the admin and the command line at once, make one revert job.
        vendors.for_alias().lock(ImportJob.objects.filter(pk=job.pk)).values_list("pk").first()
        existing = latest_revert(job)
        if existing is not None:
            return existing, False
        revert = ImportJob.objects.create(
            importer=job.importer,
            kind=JobKind.REVERT,
            reverts=job,
            source_name=job.source_name,
            created_by=user if getattr(user, "pk", None) else None,
            started_via=StartedVia.PERSON if user is not None else StartedVia.COMMAND_LINE,
            workers=job.workers,
            threads=job.threads,
            status=JobStatus.PREPARING,
            records_undo=False,
            site_url=site_url[:255] or job.site_url,
        )
    rows = (RawRow(number, _revert_values(pk, record), {}) for number, pk, record in _rows(job))
    filled = fill_job(revert, Importer(), batched(rows))
    if filled is None:
        raise NotRevertible(_("This job left no object to revert."))
    return filled, True
