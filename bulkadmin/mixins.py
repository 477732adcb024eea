"""``BulkImportMixin``: an Import button on any ``ModelAdmin``'s changelist, beside Add.

On an admin that has django-import-export's ``ImportMixin`` too, the button says "Import in the
background" and also offers the admin's ``resource_classes``, run by ``ResourceImporter``.

```python
@admin.register(Book)
class BookAdmin(BulkImportMixin, admin.ModelAdmin):
    bulk_importers = [BookImporter]
```

The button opens the import page bound to this model's importers, and shows only to staff who
may import (the import job permission) and add this model's objects by hand. The importers
need not be listed in ``BULKADMIN["IMPORTERS"]``: declaring them here is enough.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import select_template
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from bulkadmin import history
from bulkadmin.importers.base import Importer
from bulkadmin.importers.registry import declare

CHANGE_LIST = "bulkadmin/change_list.html"
CHANGE_FORM = "bulkadmin/change_form.html"
logger = logging.getLogger("bulkadmin")


class BulkImportMixin:
    """Mix in before ``admin.ModelAdmin`` (or an admin of django-import-export)."""

    #: Importers (classes or dotted paths) for this model.
    bulk_importers: Sequence[type[Importer] | str] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        importers = list(self.bulk_importers)
        # django-import-export's ImportMixin brings its own Import button: ours runs the same
        # resources in the background, through the engine.
        self.bulk_import_resources = hasattr(self, "get_import_resource_classes")
        if self.bulk_import_resources:
            from bulkadmin.importers.resource import ResourceImporter

            resources = getattr(self, "resource_classes", None) or []
            importers += [ResourceImporter.for_resource(resource) for resource in resources]
        self.bulk_importer_paths = [declare(importer) for importer in importers]
        # The template this admin would use (its own, or one a mixin such as ImportMixin set on
        # the instance), which ours extends.
        self._bulkadmin_base = getattr(self, "change_list_template", None)
        setattr(self, "change_list_template", CHANGE_LIST)  # noqa: B010
        self._bulkadmin_form_base = getattr(self, "change_form_template", None)
        setattr(self, "change_form_template", CHANGE_FORM)  # noqa: B010

    def _base_template(self, own: Any, page: str) -> Any:
        """The ``page`` template ("change_list.html") this admin would use without the mixin:
        its own (or another mixin's, django-import-export's), else Django's per-model lookup."""
        if own:
            return select_template([own] if isinstance(own, str) else list(own))
        opts = self.model._meta  # type: ignore[attr-defined]
        return select_template(
            [
                f"admin/{opts.app_label}/{opts.model_name}/{page}",
                f"admin/{opts.app_label}/{page}",
                f"admin/{page}",
            ]
        )

    def bulk_import_url(self, request: HttpRequest) -> str | None:
        """Where the Import button leads, or None when this user may not import here."""
        from bulkadmin.models import ImportJob

        site: admin.AdminSite = self.admin_site  # type: ignore[attr-defined]
        jobs = site._registry.get(ImportJob)
        if jobs is None or not jobs.has_add_permission(request):
            return None
        if not any(jobs.importer_permitted(request, path) for path in self.bulk_importer_paths):  # type: ignore[attr-defined]
            return None
        opts = self.model._meta  # type: ignore[attr-defined]
        url = reverse(f"{site.name}:bulkadmin_importjob_add", current_app=site.name)
        return url + "?" + urlencode({"model": opts.label_lower})

    def bulk_change_importer(self, request: HttpRequest) -> str | None:
        """The importer a bulk change of this model runs through, if this user may use one: it
        needs the model's change permission and the import job permission."""
        from bulkadmin.changes import supports_change
        from bulkadmin.importers.registry import get_importer_class
        from bulkadmin.models import ImportJob

        site: admin.AdminSite = self.admin_site  # type: ignore[attr-defined]
        jobs = site._registry.get(ImportJob)
        if jobs is None or not jobs.has_add_permission(request) or not self.has_change_permission(request):  # type: ignore[attr-defined]
            return None
        for path in self.bulk_importer_paths:
            try:
                usable = supports_change(get_importer_class(path))
            except Exception:
                logger.warning("The importer %s cannot be loaded; it is not offered.", path, exc_info=True)
                continue
            if usable and jobs.importer_permitted(request, path, "change"):  # type: ignore[attr-defined]
                return path
        return None

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        """The admin's actions, and "Change selected … through save()" where it may be used: on
        the changelist (Django 6.1 also asks for a change form's, ``action_location``)."""
        located = () if action_location is None else (action_location,)
        actions: dict[str, Any] = super().get_actions(request, *located)  # type: ignore[misc]
        if getattr(self, "actions", ()) is None or IS_POPUP_VAR in request.GET:
            return actions  # the admin has no actions here: Django's rule, kept
        if action_location is not None and getattr(action_location, "name", "") != "CHANGE_LIST":
            return actions
        if self.bulk_change_importer(request) is not None:
            from bulkadmin.change_views import change_selected

            description = _("Change selected %(verbose_name_plural)s through save()")
            actions["bulkadmin_change"] = (change_selected, "bulkadmin_change", description)
        return actions

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> Any:
        """The admin's own change form (or another mixin's), extended with links to import jobs."""
        context["bulkadmin_base_change_form"] = self._base_template(
            self._bulkadmin_form_base, "change_form.html"
        )
        return super().render_change_form(request, context, *args, **kwargs)  # type: ignore[misc]

    def get_list_filter(self, request: HttpRequest) -> Any:
        """The admin's own filters, and ``?bulkadmin_job=N``: what an import job imported."""
        return [*super().get_list_filter(request), ImportedByJobFilter]  # type: ignore[misc]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The object's page names the import jobs that created or changed it, with links."""
        context = dict(extra_context or {})
        obj = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if obj is not None:
            site: admin.AdminSite = self.admin_site  # type: ignore[attr-defined]
            context["bulkadmin_import_jobs"] = [
                (job, reverse(f"{site.name}:bulkadmin_importjob_change", args=[job], current_app=site.name))
                for job in history.jobs_of_object(obj)
            ]
        response: HttpResponse = super().change_view(request, object_id, form_url, context)  # type: ignore[misc]
        return response

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            **(extra_context or {}),
            "bulkadmin_import_url": self.bulk_import_url(request),
            "bulkadmin_import_label": _("Import in the background")
            if self.bulk_import_resources
            else _("Import"),
            "bulkadmin_base_change_list": self._base_template(self._bulkadmin_base, "change_list.html"),
        }
        response: HttpResponse = super().changelist_view(request, context)  # type: ignore[misc]
        return response


class ImportedByJobFilter(admin.SimpleListFilter):
    """``?bulkadmin_job=12``: the objects import job #12 created or changed (the job page links
    here). Shown among the filters only while it filters: a job is reached from its page."""

    title = _("import job")
    parameter_name = "bulkadmin_job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"#{value}")] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if not str(value).isdigit():
            return queryset.none()
        return history.objects_of_job(queryset, int(value))


def model_of(path: str) -> tuple[str, str] | None:
    """The ``app_label.model_name`` and plural name of an importer's model; None if it cannot load."""
    from bulkadmin.importers.registry import get_importer_class

    try:
        opts = get_importer_class(path).get_model()._meta
    except Exception:
        logger.warning("The importer %s cannot be loaded; it is not offered.", path, exc_info=True)
        return None
    return opts.label_lower, str(opts.verbose_name_plural).capitalize()


def importers_of(model_label: str, paths: Sequence[str]) -> list[str]:
    """Of ``paths``, the importers whose model is ``app_label.model_name``."""
    return [path for path in paths if (model_of(path) or ("",))[0] == model_label]
