from typing import TYPE_CHECKING

from django.contrib import admin

from mysite.models import Profile

if TYPE_CHECKING:
    ProfileModelAdmin = admin.ModelAdmin[Profile]
else:
    ProfileModelAdmin = admin.ModelAdmin


@admin.register(Profile)
class ProfileAdmin(ProfileModelAdmin):
    list_display = ["user", "display_name", "created_by_pid", "created_at"]
    search_fields = ["user__username", "display_name"]
    list_select_related = ["user"]
