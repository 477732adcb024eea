"""Admin for import jobs: the upload is the add page, the job page is a read-only change page.

Permissions: the job model's own (add to import, view to watch) plus, for every page and
endpoint, permission to add objects of the importer's model (``auth.add_user`` for users),
so staff cannot create through a file what they could not create by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import update_wrapper
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from bulkadmin import change_views, views
from bulkadmin.forms import UploadForm
from bulkadmin.importers.base import Importer
from bulkadmin.importers.registry import importer_choices, importer_paths
from bulkadmin.jobs import delete_job
from bulkadmin.mixins import BulkImportMixin, importers_of, model_of
from bulkadmin.models import ImportChunk, ImportJob, ImportRow, JobKind, Statuses

if TYPE_CHECKING:
    JobModelAdmin = admin.ModelAdmin[ImportJob]
else:
    JobModelAdmin = admin.ModelAdmin


class ImportedModelFilter(admin.SimpleListFilter):
    """Jobs by the model their importer fills."""

    title = _("model")
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        models = dict(filter(None, (model_of(importer) for importer in importer_paths())))
        return sorted(models.items(), key=lambda item: item[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet[ImportJob]) -> QuerySet[ImportJob]:
        if not self.value():
            return queryset
        return queryset.filter(importer__in=importers_of(str(self.value()), importer_paths()))


VIEW_ALL = "bulkadmin.view_all_importjobs"


def sees_every_job(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(VIEW_ALL))


class WhoseJobsFilter(admin.SimpleListFilter):
    """Mine (the default) or everyone's, for those who may see every job."""

    title = _("started by")
    parameter_name = "whose"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("mine", str(_("Mine"))), ("all", str(_("Everyone")))]

    def choices(self, changelist: Any) -> Any:
        current = self.value() or "mine"
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[ImportJob]) -> QuerySet[ImportJob]:
        if self.value() == "all":
            return queryset
        return queryset.filter(created_by_id=request.user.pk)


@admin.register(ImportJob)
class ImportJobAdmin(JobModelAdmin):
    list_display = [
        "__str__",
        "status",
        "progress_percent",
        "succeeded",
        "failed",
        "created_by",
        "created_at",
    ]
    # Only the users who started a job, not every account on the site (RelatedOnly).
    list_filter = ["status", ImportedModelFilter]
    list_select_related = ["created_by"]
    date_hierarchy = "created_at"
    search_fields = ["source_name"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "importer_display",
                    "source_name",
                    "options_display",
                    "created_by",
                    "parent",
                    "error",
                ]
            },
        ),
        (
            _("Runner"),
            {
                "classes": ["collapse"],
                "fields": [
                    "created_at",
                    "started_at",
                    "finished_at",
                    "heartbeat_at",
                    "workers",
                    "threads",
                    "runner_host",
                    "runner_pid",
                ],
            },
        ),
    ]
    change_form_template = "bulkadmin/job_change_form.html"

    class Media:
        css = {"all": ["bulkadmin/bulkadmin.css"]}

    @admin.display(description="importer")
    def importer_display(self, job: ImportJob) -> str:
        return dict(importer_choices()).get(job.importer, job.importer)

    @admin.display(description="options")
    def options_display(self, job: ImportJob) -> str:
        """The upload form's own words for the options chosen, not the stored JSON; a bulk
        change's change."""
        if job.kind == JobKind.CHANGE:
            return job.change_description()
        fields = UploadForm.base_fields
        chosen = [
            str(fields[name].label) for name, value in job.options.items() if value is True and name in fields
        ]
        return "; ".join(chosen) or str(_("No options"))

    @admin.display(description="progress")
    def progress_percent(self, job: ImportJob) -> str:
        percent = 100 if not job.total else int(100 * job.processed / job.total)
        return format_html(
            '<progress class="bulkadmin-list-progress" max="100" value="{}"></progress> {}%', percent, percent
        )

    def get_list_filter(self, request: HttpRequest) -> Any:
        if not sees_every_job(request):
            return self.list_filter  # only their own jobs: nothing to choose
        return [WhoseJobsFilter, *self.list_filter, ("created_by", admin.RelatedOnlyFieldListFilter)]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ImportJob]:
        """Staff see their own jobs; ``view_all_importjobs`` (a superuser's) shows everyone's."""
        jobs = super().get_queryset(request)
        return jobs if sees_every_job(request) else jobs.filter(created_by_id=request.user.pk)

    # ---- permissions ---------------------------------------------------------------------
    def importer_permitted(
        self, request: HttpRequest, importer: type[Importer] | str, action: str = "add"
    ) -> bool:
        """May this user ``action`` objects of the importer's model by hand?"""
        try:
            cls = import_string(importer) if isinstance(importer, str) else importer
            if isinstance(importer, str) and importer not in importer_paths():
                return bool(request.user.is_superuser)  # an importer since unconfigured
            opts = cls.get_model()._meta
        except Exception:
            return bool(request.user.is_superuser)
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")

    def importer_choices_for(self, request: HttpRequest) -> list[tuple[str, str]]:
        """The importers this user may use; with ``?model=app.model`` (a changelist's Import
        button), only that model's."""
        choices = [(p, label) for p, label in importer_choices() if self.importer_permitted(request, p)]
        model = request.GET.get("model")
        if model:
            allowed = set(importers_of(model, [p for p, _label in choices]))
            choices = [(p, label) for p, label in choices if p in allowed]
        return choices

    def _importers_allowed(self, request: HttpRequest, obj: ImportJob | None) -> bool:
        if obj is not None:
            return self.importer_permitted(request, obj.importer)
        return any(self.importer_permitted(request, p) for p in importer_paths())

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) and self._importers_allowed(request, None)

    def has_view_permission(self, request: HttpRequest, obj: ImportJob | None = None) -> bool:
        if obj is not None and not (obj.started_by(request.user) or sees_every_job(request)):
            return False  # another person's job: their file's names and emails
        return super().has_view_permission(request, obj) and self._importers_allowed(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and self._importers_allowed(request, None)

    def has_change_permission(self, request: HttpRequest, obj: ImportJob | None = None) -> bool:
        """Never: a job's fields are the runner's; the change page is a read-only view."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ImportJob | None = None) -> bool:
        if obj is not None and obj.status in Statuses.WATCHED:  # not deleted from under its runner
            return False
        return super().has_delete_permission(request, obj) and self._importers_allowed(request, obj)

    def get_deleted_objects(
        self, objs: Sequence[ImportJob] | QuerySet[ImportJob], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """The jobs, and how many chunks and failed rows go with them: counted, never listed.

        Django's own collector would load and list every row of a million-row job; the rows
        are the job's own records, so deleting the job needs no permission on them.
        """
        jobs = list(objs)
        counts = {
            str(ImportJob._meta.verbose_name_plural): len(jobs),
            str(ImportChunk._meta.verbose_name_plural): ImportChunk.objects.filter(job__in=jobs).count(),
            str(ImportRow._meta.verbose_name_plural): ImportRow.objects.filter(job__in=jobs).count(),
        }
        return [str(job) for job in jobs], {k: v for k, v in counts.items() if v}, set(), []

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A job a runner works on is not deleted from under it: say so, rather than 403."""
        job = self.get_queryset(request).filter(pk=object_id).first() if object_id.isdigit() else None
        if job is not None and job.status in Statuses.WATCHED and self.has_view_permission(request, job):
            messages.warning(request, _("This import is running: cancel it first, then delete it."))
            return HttpResponseRedirect(reverse("admin:bulkadmin_importjob_change", args=[job.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request: HttpRequest, obj: ImportJob) -> None:
        delete_job(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ImportJob]) -> None:
        for job in queryset:
            delete_job(job)

    def has_run_permission(self, request: HttpRequest, job: ImportJob) -> bool:
        """Cancel, resume, correct and rerun: for those who may start such an import.

        An update-mode job changes existing objects, so it also needs the change permission,
        as its upload did: otherwise a rerun would let anyone update what they may only add.
        """
        if job.kind == JobKind.REVERT:  # deletes and restores: either right lets one act on it
            rights = self.importer_permitted(request, job.importer, "delete") or self.importer_permitted(
                request, job.importer, "change"
            )
        else:
            rights = (job.kind == JobKind.CHANGE or self.importer_permitted(request, job.importer)) and (
                not job.options.get("update_existing")
                or self.importer_permitted(request, job.importer, "change")
            )
        return bool(super().has_add_permission(request) and self.has_view_permission(request, job) and rights)

    def may_revert(self, request: HttpRequest, job: ImportJob, deletes: int, restores: int) -> bool:
        """Reverting deletes (the delete permission) and restores (the change permission)."""
        return bool(
            super().has_add_permission(request)
            and self.has_view_permission(request, job)
            and (not deletes or self.importer_permitted(request, job.importer, "delete"))
            and (not restores or self.importer_permitted(request, job.importer, "change"))
        )

    # ---- pages ---------------------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        def wrap(
            view: Callable[..., HttpResponseBase], methods: tuple[str, ...] = ("GET", "HEAD")
        ) -> Callable[..., HttpResponseBase]:
            def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
                return view(self, request, *args, **kwargs)

            allowed = require_http_methods(list(methods))(update_wrapper(wrapper, view))
            return self.admin_site.admin_view(allowed)

        post = ("POST",)

        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("add/confirm/", wrap(views.confirm, post), name=f"{name}_confirm"),
            path("add/recheck/", wrap(views.recheck_as_update, post), name=f"{name}_recheck"),
            path("add/columns/", wrap(views.map_columns, post), name=f"{name}_columns"),
            path("add/discard/", wrap(views.discard, post), name=f"{name}_discard"),
            path(
                "add/template/<str:importer>.<str:file_format>",
                wrap(views.template),
                name=f"{name}_template",
            ),
            path("add/invalid-rows/", wrap(views.invalid_rows, post), name=f"{name}_invalid_rows"),
            path("<int:object_id>/progress/", wrap(views.progress), name=f"{name}_progress"),
            path("<int:object_id>/cancel/", wrap(views.cancel, post), name=f"{name}_cancel"),
            path("<int:object_id>/resume/", wrap(views.resume, post), name=f"{name}_resume"),
            path("<int:object_id>/rerun/", wrap(views.rerun, post), name=f"{name}_rerun"),
            path(
                "<int:object_id>/revert/",
                wrap(change_views.revert, ("GET", "HEAD", "POST")),
                name=f"{name}_revert",
            ),
            path(
                "<int:object_id>/failed-rows.<str:file_format>",
                wrap(views.download),
                name=f"{name}_download",
            ),
            path(
                "<int:object_id>/rows/<int:row_id>/",
                wrap(views.edit_row, ("GET", "HEAD", "POST")),
                name=f"{name}_row",
            ),
            *super().get_urls(),
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return views.upload(self, request)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        job = ImportJob.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if job is not None and self.has_view_permission(request, job):
            extra_context = {**views.job_page_context(self, request, job), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)


__all__ = ["BulkImportMixin", "ImportJobAdmin"]
