from django.apps import AppConfig


class LibraryConfig(AppConfig):
    """The demo's second app: models that ``ModelImporter`` fills through save()."""

    name = "mysite.library"
    label = "library"
    default_auto_field = "django.db.models.BigAutoField"
