"""The demo project. Its Celery app is loaded with Django so tasks enqueue through it."""

from mysite.celery import app as celery_app

__all__ = ["celery_app"]
