"""The admin history of what a job created or changed: a ``LogEntry`` per object, by the job's
starter ("Added by import job #12."), written in the transaction that saved the object.

The entries are also how an object finds its job and a job its objects (the changelist of
``BulkImportMixin`` filters on ``?bulkadmin_job=12``). A job from the command line has no
starter, and so no history.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import CharField, IntegerField, QuerySet, Subquery
from django.db.models.functions import Cast

ADDED = "Added by import job #{job}."
CHANGED = "Changed by import job #{job}."
DELETED = "Deleted by import job #{job}."
MESSAGES = {ADDITION: ADDED, CHANGE: CHANGED, DELETION: DELETED}
_JOB = re.compile(r"by import job #(\d+)\.$")


def action_of(importer: Any) -> int | None:
    """What the importer's last row did to its object, as a ``LogEntry`` action flag (None:
    nothing)."""
    if importer.untouched:
        return None
    if importer.deleted:
        return DELETION
    return ADDITION if importer.created else CHANGE


def entries(job_id: int, user_id: Any, objects: list[tuple[models.Model, int | None]]) -> list[LogEntry]:
    """The entries for objects a chunk imported, ``(object, action flag)``; none without a
    starter."""
    if user_id is None:
        return []
    return [
        LogEntry(
            user_id=user_id,
            content_type_id=ContentType.objects.get_for_model(obj).pk,
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            action_flag=action,
            change_message=MESSAGES[action].format(job=job_id),
        )
        for obj, action in objects
        if action is not None
    ]


def objects_of_job(queryset: QuerySet[Any], job_id: int) -> QuerySet[Any]:
    """The objects of ``queryset`` that job ``job_id`` created or changed."""
    model = queryset.model
    logged = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(model),
        change_message__in=[ADDED.format(job=job_id), CHANGED.format(job=job_id)],
    )
    pk = model._meta.pk
    as_pk: Any = IntegerField() if isinstance(pk, models.IntegerField) else CharField()
    ids = logged.annotate(imported_pk=Cast("object_id", output_field=as_pk)).values("imported_pk")
    return queryset.filter(pk__in=Subquery(ids))


def jobs_of_object(obj: models.Model) -> list[int]:
    """The import jobs that created or changed ``obj``, oldest first."""
    messages = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        change_message__contains="by import job #",
    ).values_list("change_message", flat=True)
    found = {int(match.group(1)) for message in messages if (match := _JOB.search(message))}
    return sorted(found)
