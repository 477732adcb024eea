from django.apps import AppConfig


class MySiteConfig(AppConfig):
    name = "mysite"
    verbose_name = "Demo site"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from mysite import receivers  # noqa: F401  (connects the post_save receiver)
