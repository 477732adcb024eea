from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BulkAdminConfig(AppConfig):
    name = "bulkadmin"
    verbose_name = _("Bulk imports")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bulkadmin import checks  # noqa: F401  (registers the system checks)
