"""``RevertImporter``: what runs a revert job's rows, one per object the reverted job touched.

A row says which object (``object``), whether the job created it (``delete``) or changed it
(``restore``), and for a change what it changed (``undo``: ``bulkadmin.undo``'s before and
after). It runs on the engine like any import, so it is chunked, exactly once, resumable and
cancellable, and each object's outcome is committed with it.

- A created object is deleted through ``delete()``: signals and cascades run.
- A changed object gets its "before" values back, through ``save()``, if its fields still hold
  what the job left there. Changed by someone since, it is left alone and the row fails.
- Either way, an object already as the revert wants it (gone, or already restored) is left
  untouched and counts as done: reverting twice changes nothing.

Rights are the starter's: the model's delete or change permission, and the reverted job's
importer's rules (``Importer.check_delete``, ``check_restore``): a revert never grants what an
import would have refused.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from django.db import models
from django.utils.translation import gettext as _

from bulkadmin import undo
from bulkadmin.importers.base import NON_FIELD, Cleaned, Column, Importer, RowInvalid

DELETE = "delete"
RESTORE = "restore"


class RevertImporter(Importer):
    """Wraps the reverted job's importer, whose model, context and rules it uses."""

    label = "Revert"
    columns: ClassVar[tuple[Column, ...]] = (Column("object"), Column("action"))

    def __init__(self, inner: Importer) -> None:
        super().__init__(inner.context)
        self.inner = inner
        self._allowed: dict[str, bool] = {}

    @property
    def _last(self) -> threading.local:
        return self.inner._last

    @property
    def target(self) -> type[models.Model]:
        return self.inner.get_model()

    def clean_row(self, values: Mapping[str, Any]) -> Cleaned:
        action = values.get("action")
        if action not in (DELETE, RESTORE) or not values.get("object"):
            raise RowInvalid.single(NON_FIELD, _("This row does not say what to revert."))
        return {"object": str(values["object"]), "action": action, "undo": values.get("undo") or {}}

    def prepare_row(self, cleaned: Cleaned) -> Cleaned:
        """What is sure to fail, failed outside the chunk's transaction: a refusal inside it
        rolls its neighbours back and runs them again, their receivers with them. Checked again
        inside, where it counts."""
        obj = self.target._default_manager.filter(pk=cleaned["object"]).first()
        if cleaned["action"] == DELETE:
            if obj is not None:
                self._check_delete(obj)
        elif obj is not None and "before" in cleaned["undo"]:
            self._check_restore(obj, cleaned["undo"])
        return cleaned

    def setup(self) -> None:
        self.inner.setup()
        self._allowed = {}

    def _may(self, action: str) -> bool:
        """The starter's model permission, checked once per worker with today's grants."""
        if self.context.is_trusted:
            return True
        if action not in self._allowed:
            opts = self.target._meta
            user = self.context.user
            codename = f"{opts.app_label}.{action}_{opts.model_name}"
            self._allowed[action] = bool(getattr(user, "has_perm", lambda _perm: False)(codename))
        return self._allowed[action]

    def import_row(self, cleaned: Cleaned) -> models.Model:
        model = self.target
        obj = model._default_manager.filter(pk=cleaned["object"]).first()
        if cleaned["action"] == DELETE:
            return self._delete(obj, cleaned["object"])
        return self._restore(obj, cleaned["undo"])

    def _delete(self, obj: models.Model | None, pk: str) -> models.Model:
        if obj is None:
            self.untouched = True  # gone already: nothing to do
            return self.target(pk=pk)
        self._check_delete(obj)
        kept_pk = obj.pk
        obj.delete()
        obj.pk = kept_pk  # for the history and the job's records: delete() clears it
        self.deleted = True
        return obj

    def _check_delete(self, obj: models.Model) -> None:
        if not self._may("delete"):
            raise RowInvalid.single(NON_FIELD, _("You may not delete %(what)s.") % {"what": self._noun()})
        refused = self.inner.check_delete(obj)
        if refused:
            raise RowInvalid.single(NON_FIELD, refused)

    def _check_restore(self, obj: models.Model, record: dict[str, Any]) -> bool:
        """Raise when the object may not be restored; False when it is restored already."""
        before, after = record["before"], record.get("after", {})
        if not undo.differing(obj, before):
            return False
        changed = undo.differing(obj, after)
        if changed:
            raise RowInvalid({name: [_("Changed since the import; left as it is.")] for name in changed})
        if not self._may("change"):
            raise RowInvalid.single(NON_FIELD, _("You may not change %(what)s.") % {"what": self._noun()})
        refused = self.inner.check_restore(obj, before)
        if refused:
            raise RowInvalid(refused)
        return True

    def _restore(self, obj: models.Model | None, record: dict[str, Any]) -> models.Model:
        if "before" not in record:
            raise RowInvalid.single(
                NON_FIELD, _("What this row changed was not recorded, so it cannot be reverted.")
            )
        if obj is None:
            raise RowInvalid.single(NON_FIELD, _("This object no longer exists."))
        if not self._check_restore(obj, record):
            self.untouched = True  # restored already
            return obj
        before = record["before"]
        self.created = False
        self.remember(obj, before)
        many = undo.restore(obj, before)
        obj.save()
        for name, pks in many.items():
            getattr(obj, name).set(pks)
        return obj

    def _noun(self) -> str:
        return str(self.target._meta.verbose_name_plural)
