from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from bulkadmin.admin import BulkImportMixin
from bulkadmin.importers.users import UserImporter
from mysite.models import Profile

if TYPE_CHECKING:
    ProfileModelAdmin = admin.ModelAdmin[Profile]
    BaseUserAdmin = DjangoUserAdmin[Any]
else:
    ProfileModelAdmin = admin.ModelAdmin
    BaseUserAdmin = DjangoUserAdmin


@admin.register(Profile)
class ProfileAdmin(ProfileModelAdmin):
    list_display = ["user", "display_name", "created_by_pid", "created_at"]
    search_fields = ["user__username", "display_name"]
    list_select_related = ["user"]


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(BulkImportMixin, BaseUserAdmin):
    """Django's user admin, with an Import button beside "Add user"."""

    bulk_importers = [UserImporter]
