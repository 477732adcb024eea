"""The built-in importer: users, with groups, through ``User.save()`` so every signal fires."""

from __future__ import annotations

import difflib
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, make_password
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from bulkadmin import conf, vendors
from bulkadmin.importers.base import Cleaned, Column, Errors, Exists, RowInvalid
from bulkadmin.importers.fields import split_list
from bulkadmin.importers.model import ModelImporter

logger = logging.getLogger("bulkadmin")
#: Plain English ``str`` (marked for translation): translate where used, ``_(PRIVILEGE_MESSAGE)``,
#: ``_(GROUP_MESSAGE).format(name=...)``; a lazy string could not go into an errors dict (JSON).
PRIVILEGE_MESSAGE = gettext_noop("Only a superuser may create or change staff members and superusers.")
GROUP_MESSAGE = gettext_noop(
    "Only a superuser may add users to {name}: it grants permissions you do not have."
)


def groups_beyond(user: Any, names: set[str]) -> set[str]:
    """The named groups granting a permission ``user`` lacks.

    Putting an account you control into such a group would hand you its permissions, so a
    non-superuser may only use groups whose permissions they hold themselves.
    """
    if not names:
        return set()
    held = user.get_all_permissions() if user is not None else set()
    granted = Group.objects.filter(name__in=names, permissions__isnull=False).values_list(
        "name", "permissions__content_type__app_label", "permissions__codename"
    )
    return {name for name, app_label, codename in granted if f"{app_label}.{codename}" not in held}


def group_key(name: str) -> str:
    """``" support "`` and ``"Support"`` name one group: staff type names, not identifiers."""
    return " ".join(name.split()).casefold()


class GroupDirectory:
    """The groups that exist, found by a name as staff typed it."""

    def __init__(self) -> None:
        self.ids = dict(Group.objects.values_list("name", "id"))
        self.by_key = {group_key(name): name for name in self.ids}

    def resolve(self, typed: str) -> str | None:
        return self.by_key.get(group_key(typed))

    def unknown(self, typed: str) -> str:
        close = difflib.get_close_matches(group_key(typed), list(self.by_key), n=1, cutoff=0.75)
        if close:
            return _("Unknown group “%(name)s”. Did you mean “%(match)s”?") % {
                "name": typed,
                "match": self.by_key[close[0]],
            }
        return _("Unknown group “%(name)s”.") % {"name": typed}


class UserImporter(ModelImporter):
    """A ``ModelImporter`` for the user model, with the rules accounts need on top: privileges
    only a superuser may grant, groups by name as staff type them, passwords hashed by the
    worker and never stored in clear."""

    label = "Users"
    fields = ["username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser"]
    key_field = "username"
    columns: ClassVar[Sequence[Column]] = (
        Column(
            "username",
            required=True,
            help_text=gettext_lazy("Letters, digits and @/./+/-/_ only."),
            aliases=("login", "user"),
            example="ada.lovelace",
        ),
        Column("email", aliases=("e-mail", "mail"), example="ada@example.com"),
        Column("first_name", aliases=("given name", "forename"), example="Ada"),
        Column("last_name", aliases=("surname", "family name"), example="Lovelace"),
        Column("password", secret=True, help_text=gettext_lazy("Hashed by the worker; blank: unusable.")),
        Column(
            "is_active",
            help_text=gettext_lazy("true/false; default true."),
            aliases=("enabled",),
            example="true",
        ),
        Column(
            "is_staff",
            help_text=gettext_lazy("true/false; superusers only."),
            aliases=("staff",),
            example="false",
        ),
        Column(
            "is_superuser",
            help_text=gettext_lazy("true/false; superusers only."),
            aliases=("superuser",),
            example="false",
        ),
        Column(
            "groups",
            help_text=gettext_lazy("Existing group names separated by ';'."),
            aliases=("group", "roles"),
            example="Editors;Support",
        ),
    )

    _groups: GroupDirectory | None = None
    _forbidden_groups: set[str] = set()

    @classmethod
    def get_model(cls) -> type[AbstractUser]:
        return get_user_model()

    def edit_field(self, name: str) -> Any:
        if name == "groups":
            from django import forms

            names = sorted(Group.objects.values_list("name", flat=True))
            return forms.MultipleChoiceField(required=False, choices=[(n, n) for n in names])
        return super().edit_field(name)

    # ---- validation ----------------------------------------------------------------------
    def clean_row(self, values: Mapping[str, str]) -> Cleaned:
        """The model's fields as ``ModelImporter`` cleans them, then what accounts add."""
        user_model = self.get_model()
        fields = {k: v for k, v in values.items() if k not in ("password", "groups")}
        if "username" in fields:
            # NFKC, as the admin's user form does, so "ｊｏｅ" is the same user as "joe"
            fields["username"] = user_model.normalize_username(fields["username"])
        errors: Errors = {}
        try:
            cleaned = super().clean_row(fields)
        except RowInvalid as exc:
            cleaned, errors = {}, exc.errors
        if cleaned.get("email"):
            cleaned["email"] = user_model.objects.normalize_email(cleaned["email"])
        # A blank yes/no cell leaves the field alone: the model's default for a new user, the
        # current value for one updated (a blank is_active must not reactivate an account).
        for name in ("is_active", "is_staff", "is_superuser"):
            if cleaned.get(name) is None:
                cleaned.pop(name, None)
            elif name != "is_active" and cleaned[name] and not self.context.is_trusted:
                errors.setdefault(name, []).append(_(PRIVILEGE_MESSAGE))
        groups = split_list(values.get("groups", ""))
        if groups:  # a blank cell leaves an updated user's groups alone
            cleaned["groups"] = groups
        password = values.get("password", "")
        if password:
            if len(password) > 4096:
                errors.setdefault("password", []).append(_("The password is too long."))
            elif "username" in cleaned:
                probe = user_model(
                    **{
                        k: cleaned[k]
                        for k in ("username", "email", "first_name", "last_name")
                        if k in cleaned
                    }
                )
                try:
                    password_validation.validate_password(password, probe)  # type: ignore[arg-type]
                except ValidationError as exc:
                    errors.setdefault("password", []).extend(exc.messages)
            cleaned["password"] = password
        if errors:
            raise RowInvalid(errors)
        return cleaned

    def check_rows(self, rows: Sequence[tuple[int, Cleaned]]) -> dict[int, Errors]:
        user_model = self.get_model()
        errors: dict[int, Errors] = {}
        usernames = [cleaned["username"] for _, cleaned in rows]
        existing = {
            username: privileged
            for username, is_staff, is_superuser in user_model._default_manager.filter(
                username__in=usernames
            ).values_list("username", "is_staff", "is_superuser")
            for privileged in [bool(is_staff or is_superuser)]
        }
        directory = GroupDirectory() if any(cleaned.get("groups") for _, cleaned in rows) else None
        wanted_groups = {
            found
            for _, cleaned in rows
            for name in cleaned.get("groups", ())
            if directory is not None and (found := directory.resolve(name)) is not None
        }
        forbidden = set() if self.context.is_trusted else groups_beyond(self.context.user, wanted_groups)
        for number, cleaned in rows:
            row_errors: Errors = {}
            username = cleaned["username"]
            if username in existing:
                if not self.context.update_existing:
                    row_errors["username"] = [
                        Exists(
                            _("A user with the username “%(username)s” already exists.")
                            % {"username": username}
                        )
                    ]
                elif existing[username] and not self.context.is_trusted:
                    row_errors["username"] = [_(PRIVILEGE_MESSAGE)]
            for typed in cleaned.get("groups", ()):
                assert directory is not None
                name = directory.resolve(typed)
                if name is None:
                    row_errors.setdefault("groups", []).append(directory.unknown(typed))
                elif name in forbidden:
                    row_errors.setdefault("groups", []).append(_(GROUP_MESSAGE).format(name=name))
            if row_errors:
                errors[number] = row_errors
        return errors

    # ---- import --------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()  # without it, prefetch() found no cache and set all up again each unit
        self._groups = GroupDirectory()
        self._forbidden_groups = (
            set() if self.context.is_trusted else groups_beyond(self.context.user, set(self._groups.ids))
        )

    def _group_id(self, typed: str) -> int:
        if self._groups is None or self._groups.resolve(typed) is None:
            self.setup()  # a group created since the worker started
        assert self._groups is not None
        name = self._groups.resolve(typed)
        if name is None:
            raise RowInvalid.single("groups", self._groups.unknown(typed))
        if name in self._forbidden_groups:  # checked at upload; again here, with today's grants
            raise RowInvalid.single("groups", _(GROUP_MESSAGE).format(name=name))
        return self._groups.ids[name]

    def prepare_row(self, cleaned: Cleaned) -> Cleaned:
        prepared = dict(cleaned)
        password = prepared.pop("password", "")
        # Before the row's transaction: on SQLite, CPU work there holds the one write lock.
        prepared["password_hash"] = make_password(password) if password else unusable_password()
        return prepared

    def import_row(self, cleaned: Cleaned) -> models.Model:
        user_model = self.get_model()
        fields = {
            k: v
            for k, v in cleaned.items()
            if k in {"email", "first_name", "last_name", "is_active", "is_staff", "is_superuser"}
        }
        user = None
        if self.context.update_existing:
            user = user_model._default_manager.filter(username=cleaned["username"]).first()
        created = self.created = user is None
        if user is None:
            user = user_model(username=cleaned["username"], **fields)
            user.password = cleaned.get("password_hash") or unusable_password()
        else:
            if (user.is_staff or user.is_superuser) and not self.context.is_trusted:
                raise RowInvalid.single("username", _(PRIVILEGE_MESSAGE))
            # (a password is not kept for a revert: its hash stays out of the job's records)
            self.remember(
                user,
                [*(k for k, v in fields.items() if v != ""), *(["groups"] if "groups" in cleaned else [])],
            )
            for key, value in fields.items():
                if value != "":  # a blank cell leaves the current value, as blank booleans do
                    setattr(user, key, value)
            if cleaned.get("password_hash") and not cleaned["password_hash"].startswith(
                UNUSABLE_PASSWORD_PREFIX
            ):
                user.password = cleaned["password_hash"]
        user.save()
        if "groups" in cleaned:
            group_ids = [self._group_id(name) for name in cleaned["groups"]]
            if created:
                if group_ids:
                    user.groups.add(*group_ids)
            else:
                user.groups.set(group_ids)
            self._check_groups_saved(user, group_ids)
        if created and self.context.options.get("send_password_email"):
            if user.email:
                # After the commit, so a rolled-back row sends nothing; counted as it goes.
                base, job_id = self.context.site_url, self.context.job_id
                transaction.on_commit(lambda: email_new_user(user, base, job_id), robust=True)
            else:  # counted in the row's transaction: once, whatever is retried
                count_email(self.context.job_id, "emails_skipped")
        return user

    def _check_groups_saved(self, user: AbstractUser, group_ids: list[int]) -> None:
        """A group deleted since ``setup()`` fails the row, as its foreign key does elsewhere."""
        if not group_ids or not vendors.for_alias().m2m_add_drops_missing_targets:
            return
        missing = set(group_ids) - set(user.groups.filter(pk__in=group_ids).values_list("pk", flat=True))
        if missing:
            ids = self._groups.ids if self._groups is not None else {}
            names = [name for name, pk in ids.items() if pk in missing]
            self.setup()
            raise RowInvalid.single(
                "groups", _("Unknown group “%(name)s”.") % {"name": "”, “".join(sorted(names))}
            )

    # ---- bulk changes ----------------------------------------------------------------------
    def related_ids(self, name: str, values: Sequence[str]) -> list[Any]:
        if name != "groups":
            return super().related_ids(name, values)
        return [self._group_id(value) for value in values]

    def check_related(self, name: str, values: Sequence[str]) -> list[str]:
        if name != "groups":
            return super().check_related(name, values)
        directory = GroupDirectory()
        found = {typed: directory.resolve(typed) for typed in values}
        problems = [directory.unknown(typed) for typed, name_ in found.items() if name_ is None]
        known = {name_ for name_ in found.values() if name_ is not None}
        if not self.context.is_trusted:
            problems += [
                _(GROUP_MESSAGE).format(name=n) for n in sorted(groups_beyond(self.context.user, known))
            ]
        return problems

    # ---- reverting -------------------------------------------------------------------------
    def _privileged(self, user: Any) -> bool:
        return bool(user.is_staff or user.is_superuser) and not self.context.is_trusted

    def check_delete(self, obj: models.Model) -> str | None:
        return _(PRIVILEGE_MESSAGE) if self._privileged(obj) else None

    def check_restore(self, obj: models.Model, before: dict[str, Any]) -> Errors:
        if self.context.is_trusted:
            return {}
        if self._privileged(obj) or before.get("is_staff") or before.get("is_superuser"):
            return {"username": [_(PRIVILEGE_MESSAGE)]}
        groups = {int(pk) for pk in before.get("groups") or ()} - set(
            obj.groups.values_list("pk", flat=True)  # type: ignore[attr-defined]
        )
        names = set(Group.objects.filter(pk__in=groups).values_list("name", flat=True))
        forbidden = groups_beyond(self.context.user, names)
        return (
            {"groups": [_(GROUP_MESSAGE).format(name=name) for name in sorted(forbidden)]}
            if forbidden
            else {}
        )

    def explain_error(self, cleaned: Cleaned, exc: Exception) -> Errors:
        if (
            isinstance(exc, IntegrityError)
            and self.get_model()._default_manager.filter(username=cleaned.get("username")).exists()
        ):
            return {
                "username": [
                    Exists(
                        _("A user with the username “%(username)s” already exists.")
                        % {"username": cleaned.get("username")}
                    )
                ]
            }
        return super().explain_error(cleaned, exc)


def unusable_password() -> str:
    """What ``make_password(None)`` makes, from one call to the OS's random source.

    Django draws its 40 characters one ``secrets.choice`` at a time: 0.3 ms a row, a tenth of
    importing a user.
    """
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)


def email_new_user(user: AbstractUser, site_url: str, job_id: int | None) -> None:
    """Send the new user their link and count it, sent or failed, on the job. A mail server
    refusing one message never stops the worker or drops the others: it is logged and counted."""
    try:
        send_set_password_email(user, site_url)
    except Exception:
        logger.exception("Job %s: the email to new user %s could not be sent.", job_id, user.pk)
        count_email(job_id, "emails_failed")
    else:
        count_email(job_id, "emails_sent")


def count_email(job_id: int | None, counter: str) -> None:
    """Called in a chunk's transaction or its on_commit callbacks: the worker holds the write
    turn for both, so none is taken here (a second would wait for itself)."""
    from bulkadmin.models import ImportJob

    if job_id is not None:
        ImportJob.objects.filter(pk=job_id).update(**{counter: F(counter) + 1})


def send_set_password_email(user: AbstractUser, site_url: str = "") -> None:
    """A link to Django's own password reset confirm view, valid as long as its tokens are, on
    the site the job was started on."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)  # type: ignore[arg-type]
    base = (site_url or str(conf.get("SITE_URL"))).rstrip("/")
    link = base + reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    send_mail(
        subject=_("Your new account"),
        message=_(
            "An account was created for you with the username %(username)s.\n\n"
            "Choose your password here:\n%(link)s\n"
        )
        % {"username": user.get_username(), "link": link},
        from_email=None,
        recipient_list=[user.email],
    )
