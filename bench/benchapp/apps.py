"""Connects the workload receiver in every process that sets Django up, pool workers included."""

from __future__ import annotations

import os
import time
from typing import Any

from django.apps import AppConfig

#: Seconds of CPU (W1) and of waiting (W2) per row.
CPU_SECONDS = 0.005
SLEEP_SECONDS = 0.020


def burn_cpu(seconds: float) -> None:
    """Spin until this thread has used ``seconds`` of CPU: the same work however busy the machine."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def workload_receiver(workload: str) -> Any:
    def w1(sender: type, instance: Any, **kwargs: Any) -> None:
        burn_cpu(CPU_SECONDS)

    def w2(sender: type, instance: Any, **kwargs: Any) -> None:
        time.sleep(SLEEP_SECONDS)

    return {"W1": w1, "W2": w2}.get(workload)


class BenchAppConfig(AppConfig):
    name = "bench.benchapp"
    label = "benchapp"
    verbose_name = "Benchmark workload"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_save

        workload = os.environ.get("BENCH_WORKLOAD", "W0").upper()
        receiver = workload_receiver(workload)
        if receiver is not None:
            # weak=False: the closure has no other reference.
            pre_save.connect(receiver, sender=get_user_model(), weak=False, dispatch_uid="bench.workload")
