from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # Password reset views, for the "email new users a link to set their password" option.
    path("accounts/", include("django.contrib.auth.urls")),
]
