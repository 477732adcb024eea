"""Imported by the pool's forkserver before it forks any worker: Django is set up there once.

Every worker then starts with the app registry ready instead of importing Django afresh (about
half a second each), and with it out of the garbage collector's walks. Nothing here opens a
database connection, so none is shared by the forks. If the setup fails, the workers set
Django up themselves (``bootstrap.initialize_worker``) and report the error from there.
"""

from __future__ import annotations

import contextlib

import django

from bulkadmin.bootstrap import freeze_what_lives_on

with contextlib.suppress(Exception):
    django.setup()
freeze_what_lives_on()
