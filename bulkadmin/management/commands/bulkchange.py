"""``manage.py bulkchange MODEL --filter … --set …``: change many objects through ``save()``."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.core.management.base import CommandError
from django.db import models

from bulkadmin import changes
from bulkadmin.importers.base import Importer, RowInvalid
from bulkadmin.importers.fields import parse_bool, split_list
from bulkadmin.importers.registry import get_importer_class, importer_paths
from bulkadmin.jobs import starter_context
from bulkadmin.management.commands._running import JobCommand, add_run_arguments, run_or_follow
from bulkadmin.models import error_text


def assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(text)
    return name.strip(), value


class Command(JobCommand):
    help = (
        "Change the objects of a model that match --filter, each loaded, changed and saved "
        "through save() (signals fire), in chunks, on the engine, with a progress bar. The "
        "change is checked by the model's importer first; nothing is written when it is wrong "
        "(exit 2). Exits 0 when every object was changed, 1 when some failed. Revert it with "
        "revertjob."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("model", help="The model, as app_label.ModelName (auth.User).")
        parser.add_argument(
            "--filter",
            type=assignment,
            action="append",
            default=[],
            metavar="LOOKUP=VALUE",
            help="Which objects, as a queryset filter (is_active=true, email__endswith=@example.com).",
        )
        parser.add_argument("--all", action="store_true", help="Change every object (no --filter).")
        parser.add_argument(
            "--set", type=assignment, action="append", default=[], metavar="FIELD=VALUE", help="Set a field."
        )
        parser.add_argument(
            "--add",
            type=assignment,
            action="append",
            default=[],
            metavar="FIELD=A;B",
            help="Add related objects to a many-to-many field.",
        )
        parser.add_argument(
            "--remove",
            type=assignment,
            action="append",
            default=[],
            metavar="FIELD=A;B",
            help="Remove related objects from a many-to-many field.",
        )
        parser.add_argument("--importer", help="The importer whose rules apply (default: the model's).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        add_run_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = apps.get_model(options["model"])
        except (LookupError, ValueError) as exc:
            raise CommandError(
                f"No model {options['model']!r} (write app_label.ModelName).", returncode=2
            ) from exc
        importer_cls = self._importer(model, options["importer"])
        if not options["filter"] and not options["all"]:
            raise CommandError(
                f"Say which {model._meta.verbose_name_plural} with --filter, "
                "or pass --all to change every one.",
                returncode=2,
            )
        queryset = model._default_manager.filter(**self._filters(model, options["filter"]))
        change = changes.Change(
            set=dict(options["set"]),
            add={name: split_list(value) for name, value in options["add"]},
            remove={name: split_list(value) for name, value in options["remove"]},
        )
        key = importer_cls.key_column
        assert key is not None
        probe = queryset.order_by("pk").values_list(key, flat=True).first()
        importer = importer_cls(starter_context(None, change.as_options()))
        problems = changes.check(importer, change, "" if probe is None else str(probe))
        if problems:
            raise CommandError(f"The change is refused: {error_text(problems)}", returncode=2)
        if probe is None:
            self.stdout.write(f"No {model._meta.verbose_name_plural} match; nothing to change.")
            return
        job = changes.start_change(
            queryset,
            importer_cls,
            change,
            workers=options["workers"],
            threads=options["threads"],
            size=options["chunk_size"],
        )
        if job is None:
            self.stdout.write(f"No {model._meta.verbose_name_plural} match; nothing to change.")
            return
        what = f"{job.total:,} {model._meta.verbose_name_plural} ({job.change_description()})"
        self.stdout.write(f"Job {job.pk}: changing {what}.")
        progress = not options["no_progress"] and options.get("verbosity", 1) > 0
        code = run_or_follow(self, job, options, progress=progress)
        if code:
            sys.exit(code)

    def _importer(self, model: type[models.Model], path: str | None) -> type[Importer]:
        try:
            if path:
                importer_cls = get_importer_class(path)
            else:
                found = [p for p in importer_paths() if self._model_of(p) is model]
                if not found:
                    raise ImproperlyConfigured(
                        f"No importer in BULKADMIN['IMPORTERS'] or an admin's bulk_importers is for "
                        f"{model._meta.label}."
                    )
                importer_cls = get_importer_class(found[0])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if importer_cls.get_model() is not model or not changes.supports_change(importer_cls):
            raise CommandError(
                f"{importer_cls.dotted_path()} cannot change {model._meta.label}: it needs a "
                "ModelImporter for that model with a key_field.",
                returncode=2,
            )
        return importer_cls

    @staticmethod
    def _model_of(path: str) -> type[models.Model] | None:
        try:
            return get_importer_class(path).get_model()
        except Exception:
            return None

    def _filters(self, model: type[models.Model], filters: list[tuple[str, str]]) -> dict[str, Any]:
        """``--filter`` values, typed by their field: yes/no for a boolean, None for "null"."""
        typed: dict[str, Any] = {}
        for lookup, value in filters:
            name = lookup.split("__", 1)[0]
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist as exc:
                raise CommandError(
                    f"--filter {lookup}: {model.__name__} has no field {name!r}.", returncode=2
                ) from exc
            try:
                if lookup.endswith("__isnull"):
                    typed[lookup] = parse_bool(lookup, value, default=True)
                elif isinstance(field, models.BooleanField) and lookup in (name, f"{name}__exact"):
                    typed[lookup] = parse_bool(lookup, value, default=None)
                else:
                    typed[lookup] = value
            except RowInvalid as exc:
                raise CommandError(f"--filter {lookup}: {error_text(exc.errors)}", returncode=2) from exc
        try:
            model._default_manager.filter(**typed).exists()
        except (ValueError, ValidationError, FieldDoesNotExist) as exc:
            raise CommandError(f"--filter: {exc}", returncode=2) from exc
        return typed
