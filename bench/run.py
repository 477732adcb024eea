"""``make bench``: every contender side by side, same rows, same database, one table.

    .venv/bin/python bench/run.py                      # SQLite file, W0 W1 W2, 3 repeats
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres make bench
    DATABASE_URL=mysql://root@127.0.0.1:3306/bulkadmin make bench   # MariaDB/MySQL
    .venv/bin/python bench/run.py --quick              # a smoke run, about a minute
    .venv/bin/python bench/run.py --workloads W0 --rows 10000 --contenders baseline,bulkadmin-2w
    .venv/bin/python bench/run.py --workloads W0 --chunk-sizes 50,100,250,500
    .venv/bin/python bench/run.py --memory             # peak RSS of 100k- and 1M-row jobs
    .venv/bin/python bench/run.py --validation         # validate_file on 100k rows
    .venv/bin/python bench/run.py --export             # failed-row downloads, 10k and 100k rows

Each measurement runs in a fresh interpreter (``bench/child.py``) on a fresh database, with
``BENCH_WORKLOAD`` set before anything starts, so pool workers and forkservers get the
workload too, and the peak memory is that of this one contender's process tree (the sum of
the RSS of the process and all its descendants, sampled every 20 ms with psutil). The table
reports medians over the repeats; the repeats are interleaved (every contender once, then
again) so noise on this shared machine spreads over all of them. Ratios are to the baseline
recipe and to the ceiling (``ceiling``: one process per core, nothing but ``create()`` in
transactions of 100 rows) of the same workload.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.contenders import (  # noqa: E402
    PHASES,
    is_known,
    parse_bulkadmin,
    parse_bulkimport,
    parse_ceiling,
    parse_celery,
)
from mysite.sampledata import write_users  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / ".work"
#: The database the benchmark owns on a PostgreSQL or MySQL/MariaDB server: dropped, created and
#: migrated at the start of every invocation.
BENCH_DB = "bulkadmin_bench"
CORES = os.cpu_count() or 1
SAMPLE_SECONDS = 0.02

WORKLOADS = {
    "W0": "nothing extra",
    "W1": "5 ms of CPU per row (busy loop)",
    "W2": "20 ms of waiting per row (time.sleep)",
}
#: Rows per workload by default: enough for steady rates, few enough for ~15 minutes in all.
DEFAULT_ROWS = {"W0": 10_000, "W1": 2_000, "W2": 500}
QUICK_ROWS = {"W0": 2_000, "W1": 400, "W2": 300}
COMMON = [
    "loop",
    "baseline",
    "import-export",
    "bulk_create",
    "ceiling",
    "bulkadmin-1w",
    "bulkadmin-2w",
    "bulkadmin-4w",
    f"bulkimport-{CORES}w",
    "celery-1w",
    "celery-2w",
    "celery-4w",
]
DEFAULT_CONTENDERS = {
    "W0": COMMON,
    "W1": COMMON,
    "W2": [*COMMON, "bulkadmin-2w-4t", "bulkadmin-2w-8t", "bulkadmin-2w-16t", "bulkadmin-4w-16t"],
}
LABELS = {
    "loop": "plain loop (create())",
    "loop-command": "plain loop as a script (whole command)",
    "baseline": "baseline: ProcessPoolExecutor(4), submit per row",
    "import-export": "django-import-export import_data",
    "bulk_create": "bulk_create ×1000 (no signals, no Profiles)",
    "startup": "interpreter start and django.setup() (whole command)",
    "bulkimport-refused": "bulkimport refusing the file for its one bad last row (whole command)",
}


def plural(count: int, word: str, suffix: str = "s") -> str:
    return f"{count} {word}{suffix if count != 1 else ''}"


def label(name: str) -> str:
    celery_workers = parse_celery(name)
    if celery_workers:
        return f"bulkadmin on Celery: {plural(celery_workers, 'worker process', 'es')}"
    ceiling = parse_ceiling(name)
    if ceiling:
        return f"ceiling: {plural(ceiling, 'process', 'es')}, create() in atomic(100)"
    whole = parse_bulkimport(name)
    if whole:
        options = f"--workers {whole.workers}"
        options += f" --threads {whole.threads}" if whole.threads else ""
        options += f" --chunk-size {whole.chunk_size}" if whole.chunk_size else ""
        return f"bulkimport {options} (whole command)"
    spec = parse_bulkadmin(name)
    if spec is None:
        return LABELS.get(name, name)
    text = f"bulkadmin {spec.workers} worker{'s' if spec.workers > 1 else ''}"
    text += f" × {plural(spec.threads, 'thread')}" if spec.threads else ", threads picked"
    if spec.chunk_size:
        text += f", chunk {spec.chunk_size}"
    return text


# ---- databases ---------------------------------------------------------------------------------
class Database:
    """Where the contenders write: prepared once, made fresh before every measurement."""

    kind = ""

    def prepare(self) -> None:
        raise NotImplementedError

    def fresh(self) -> str:
        """Make the database empty and return the DATABASE_URL the child should use."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class SQLiteDatabase(Database):
    kind = "sqlite"

    def __init__(self) -> None:
        self.template = WORK / "template.sqlite3"
        self.path = WORK / "bench.sqlite3"

    def prepare(self) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        for path in WORK.glob("template.sqlite3*"):
            path.unlink()
        migrate(f"sqlite:///{self.template}")
        # Fold the WAL into the file so a copy of the file alone is complete.
        import sqlite3

        with sqlite3.connect(self.template) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")

    def fresh(self) -> str:
        for path in WORK.glob("bench.sqlite3*"):
            path.unlink()
        shutil.copyfile(self.template, self.path)
        return f"sqlite:///{self.path}"

    def describe(self) -> str:
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (a fresh file per run, WAL, IMMEDIATE transactions)"


class ServerDatabase(Database):
    """A database server's dedicated bench database, reused between runs."""

    url = ""

    def fresh(self) -> str:
        return self.url  # the child truncates the tables (bench.contenders.reset_database)


class PostgresDatabase(ServerDatabase):
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        self.admin_url = url
        parts = urlsplit(url)
        self.url = urlunsplit(parts._replace(path=f"/{BENCH_DB}"))
        self.version = ""

    def _admin(self) -> Any:
        import psycopg2  # type: ignore[import-untyped]

        conn = psycopg2.connect(self.admin_url)
        conn.autocommit = True
        return conn

    def prepare(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
                cur.execute(f"CREATE DATABASE {BENCH_DB}")
                cur.execute("SHOW server_version")
                self.version = cur.fetchone()[0]
        finally:
            conn.close()
        migrate(self.url)

    def describe(self) -> str:
        return f"PostgreSQL {self.version} (database {BENCH_DB}, tables truncated before each run)"


class MySQLDatabase(ServerDatabase):
    """MariaDB or MySQL: the ``bulkadmin_bench`` database (utf8mb4) on the server of ``url``."""

    kind = "mysql"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url = urlunsplit(parts._replace(path=f"/{BENCH_DB}"))
        self.connect_args: dict[str, Any] = {
            "host": parts.hostname or "localhost",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "charset": "utf8mb4",
        }
        self.version = ""

    def prepare(self) -> None:
        import MySQLdb  # type: ignore[import-untyped, unused-ignore]

        conn = MySQLdb.connect(**self.connect_args)
        try:
            conn.autocommit(True)
            cur = conn.cursor()
            cur.execute(f"DROP DATABASE IF EXISTS `{BENCH_DB}`")
            cur.execute(f"CREATE DATABASE `{BENCH_DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
            self.version = str(row[0]) if row else "?"
            cur.close()
        finally:
            conn.close()
        migrate(self.url)

    def describe(self) -> str:
        # VERSION() is "10.11.19-MariaDB-0+deb12u1" on MariaDB, "8.0.40" on MySQL.
        server = "MariaDB" if "mariadb" in self.version.lower() else "MySQL"
        version = self.version.split("-")[0]
        return f"{server} {version} (database {BENCH_DB}, utf8mb4, tables truncated before each run)"


def database_from_env() -> Database:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return PostgresDatabase(url)
    if url.startswith("mysql://"):
        return MySQLDatabase(url)
    if url and not url.startswith("sqlite"):
        raise SystemExit(f"Unsupported DATABASE_URL for the benchmark: {url}")
    return SQLiteDatabase()


def child_env(database_url: str, workload: str = "W0") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=database_url,
        BENCH_WORKLOAD=workload,
        BENCH_WORK_DIR=str(WORK),
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
        DJANGO_DEBUG="0",
    )
    return env


def migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=child_env(database_url),
        check=True,
    )


# ---- one measured process ------------------------------------------------------------------
@dataclass
class Measurement:
    timings: dict[str, float]
    peak_rss: int  # bytes, whole process tree, whole run
    phase_peaks: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(proc: psutil.Process) -> int:
    """RSS summed over ``proc`` and its descendants.

    Read from ``/proc/PID/task/TID/children`` and ``/proc/PID/statm`` where the kernel has them:
    psutil finds children by scanning every process on the machine, about 1 ms a sample, and at
    50 samples a second on two busy cores that slowed the measured command by ~8%.
    """
    if Path(f"/proc/{proc.pid}/task/{proc.pid}/children").exists():
        return _proc_tree_rss(proc.pid)
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total


def _proc_tree_rss(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE_SIZE
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text()
                todo += [int(child) for child in children.split()]
    return total


def measure(spec: dict[str, Any], env: dict[str, str]) -> Measurement:
    """Run ``bench/child.py`` with ``spec``; sample its process tree's memory until it ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.child", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    ps = psutil.Process(proc.pid)
    state: dict[str, Any] = {"phase": "setup", "peaks": {"setup": 0}, "result": None, "lines": []}
    lock = threading.Lock()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("BENCH-PHASE "):
                with lock:
                    state["phase"] = line.split()[1]
                    state["peaks"].setdefault(state["phase"], 0)
            elif line.startswith("BENCH-RESULT "):
                state["result"] = json.loads(line[len("BENCH-RESULT ") :])
            else:
                state["lines"].append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while proc.poll() is None:
        rss = tree_rss(ps)
        with lock:
            peaks = state["peaks"]
            peaks[state["phase"]] = max(peaks[state["phase"]], rss)
        time.sleep(SAMPLE_SECONDS)
    reader.join()
    if proc.returncode != 0 or state["result"] is None:
        sys.stderr.write("".join(state["lines"][-20:]))
        raise RuntimeError(f"{spec} failed with exit code {proc.returncode}")
    result = state["result"]
    peaks = state["peaks"]
    return Measurement(
        timings=result.pop("timings"), peak_rss=max(peaks.values()), phase_peaks=peaks, extra=result
    )


# ---- the table ---------------------------------------------------------------------------------
@dataclass
class Row:
    workload: str
    contender: str
    rows: int
    runs: list[Measurement]

    def median(self, key: str) -> float:
        return statistics.median(m.timings[key] for m in self.runs if key in m.timings)

    @property
    def run_rate(self) -> float:
        return self.rows / self.median("run")

    @property
    def total_rate(self) -> float | None:
        return self.rows / self.median("total") if "total" in self.runs[0].timings else None

    @property
    def peak_mib(self) -> float:
        return statistics.median(m.peak_rss for m in self.runs) / 2**20


def find(rows: list[Row], workload: str, name: str) -> Row | None:
    """The workload's row of contender ``name``, if it ran."""
    return next((r for r in rows if r.workload == workload and r.contender == name), None)


def baseline_of(rows: list[Row], workload: str) -> Row | None:
    return find(rows, workload, "baseline")


def ceiling_of(rows: list[Row], workload: str) -> Row | None:
    """The workload's ceiling: the one with a process per core if it ran, else the first that did."""
    ceilings = [r for r in rows if r.workload == workload and parse_ceiling(r.contender)]
    return next((r for r in ceilings if parse_ceiling(r.contender) == CORES), None) or next(
        iter(ceilings), None
    )


def ratio(value: float | None, base: Row | None, attr: str = "run_rate") -> str:
    if value is None or base is None:
        return "–"
    return f"{value / getattr(base, attr):.2f}×"


HEADER = [
    "Workload",
    "Contender",
    "Rows",
    "Run s",
    "Rows/s (run)",
    "× baseline",
    "× ceiling",
    "Total s",
    "Rows/s (total)",
    "× baseline (total)",
    "Peak RSS MiB",
]


def table_cells(rows: list[Row]) -> list[list[str]]:
    out = []
    for row in rows:
        base, ceiling = baseline_of(rows, row.workload), ceiling_of(rows, row.workload)
        total_rate = row.total_rate
        out.append(
            [
                row.workload,
                label(row.contender),
                f"{row.rows:,}",
                f"{row.median('run'):.2f}",
                f"{row.run_rate:,.0f}",
                ratio(row.run_rate, base),
                ratio(row.run_rate, ceiling),
                f"{row.median('total'):.2f}" if total_rate else "–",
                f"{total_rate:,.0f}" if total_rate else "–",
                ratio(total_rate, base),
                f"{row.peak_mib:,.0f}",
            ]
        )
    return out


def format_text(cells: list[list[str]], header: list[str] = HEADER, left: int = 2) -> str:
    """A plain-text table; the first ``left`` columns are text, the rest figures."""
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append(
            "  ".join(
                (v.ljust(w) if i < left else v.rjust(w))
                for i, (v, w) in enumerate(zip(c, widths, strict=True))
            )
        )
    return "\n".join(lines)


def format_markdown(cells: list[list[str]], header: list[str] = HEADER, left: int = 2) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < left else "--:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines)


def targets(rows: list[Row], kind: str) -> list[str]:
    """The issue's targets, checked where this run measured what they need."""
    out: list[str] = []

    def get(workload: str, name: str) -> Row | None:
        return find(rows, workload, name)

    def best(workload: str, attr: str) -> Row | None:
        candidates = [r for r in rows if r.workload == workload and parse_bulkadmin(r.contender)]
        return max(candidates, key=lambda r: getattr(r, attr) or 0, default=None)

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    whole = get("W0", f"bulkimport-{CORES}w")
    if whole:
        ceiling, base = ceiling_of(rows, "W0"), get("W0", "baseline")
        parts, checks = [], []
        for ref, need, name in ((ceiling, 0.85, "ceiling"), (base, 2.0, "baseline")):
            if ref is None:
                parts.append(f"{name} not measured")
                continue
            x = whole.run_rate / ref.run_rate
            checks.append(x >= need)
            parts.append(f"{x:.2f}× {name} (needs ≥ {need:g}×; `{ref.contender}`)")
        # Both halves measured: MET or NOT MET; one missing: NOT MET if the other failed, else NOT CHECKED.
        result = verdict(all(checks)) if len(checks) == 2 else "NOT MET" if not all(checks) else "NOT CHECKED"
        caveat = ""
        if kind != "postgresql" or whole.rows != 10_000:
            caveat = (
                f" (measured on {kind} with {whole.rows:,} rows; the target is for PostgreSQL and "
                "10,000 rows, so this is indicative only)"
            )
        out.append(
            f"Engine core, PostgreSQL W0 10,000 users: whole `bulkimport --workers {CORES}` "
            f"≥ 0.85× ceiling and ≥ 2× baseline: {'; '.join(parts)} → {result}{caveat}"
        )

    default = get("W0", f"bulkimport-{CORES}w")
    loops = [r for r in (get("W0", "loop"), get("W0", "loop-command")) if r]
    single = get("W0", "ceiling-1p")
    if kind == "sqlite" and default and (loops or single):
        parts, checks = [], []
        for ref, need in [*((r, 1.0) for r in loops), *([(single, 0.85)] if single else [])]:
            x = default.run_rate / ref.run_rate
            checks.append(x >= need)
            parts.append(f"{x:.2f}× {label(ref.contender)} (needs ≥ {need:g}×)")
        out.append(
            f"Speed, SQLite W0: whole `bulkimport` with default options (`--workers {CORES}` is the "
            f"default here): {'; '.join(parts)} → {verdict(all(checks))}"
        )

    for workload in dict.fromkeys(r.workload for r in rows):
        loop = get(workload, "loop-command")
        commands = [get(workload, f"bulkimport-{CORES}w"), get(workload, f"bulkimport-{CORES}w-1t")]
        measured = [c for c in commands if c]
        if loop and measured:
            parts = [f"{c.run_rate / loop.run_rate:.2f}× ({label(c.contender)})" for c in measured]
            out.append(
                f"Speed, every workload: the default `bulkimport` and `--threads 1` never slower than "
                f"the plain loop as a script, {workload}: {'; '.join(parts)} → "
                f"{verdict(all(c.run_rate >= loop.run_rate for c in measured))}"
            )

    ba, base, ie = best("W0", "run_rate"), get("W0", "baseline"), get("W0", "import-export")
    if ba and base:
        need = 5.0 if kind == "sqlite" else 3.0
        run_x, total_x = ba.run_rate / base.run_rate, (ba.total_rate or 0) / base.run_rate
        out.append(
            f"W0 bulkadmin ≥ {need:g}× baseline: {label(ba.contender)} run phase {run_x:.2f}×, "
            f"including create_job {total_x:.2f}× → {verdict(run_x >= need)} (run), "
            f"{verdict(total_x >= need)} (total)"
        )
    if ba and ie and kind != "sqlite":
        run_x, total_x = ba.run_rate / ie.run_rate, (ba.total_rate or 0) / ie.run_rate
        out.append(
            f"W0 bulkadmin ≥ 8× django-import-export: run {run_x:.2f}×, total {total_x:.2f}× "
            f"→ {verdict(run_x >= 8)} (run), {verdict(total_x >= 8)} (total)"
        )
    ba, loop = best("W1", "run_rate"), get("W1", "loop")
    if ba and loop:
        cores = os.cpu_count() or 1
        eff = loop.median("run") / cores / ba.median("run")
        eff_total = loop.median("run") / cores / ba.median("total")
        out.append(
            f"W1 ≥ 90% of linear scaling (loop time / {cores} cores / bulkadmin time): "
            f"{label(ba.contender)} run {eff:.0%}, total {eff_total:.0%} → {verdict(eff >= 0.9)} (run), "
            f"{verdict(eff_total >= 0.9)} (total)"
        )
    ba, base = best("W2", "run_rate"), get("W2", "baseline")
    if ba and base:
        run_x, total_x = ba.run_rate / base.run_rate, (ba.total_rate or 0) / base.run_rate
        out.append(
            f"W2 bulkadmin ≥ 8× baseline: {label(ba.contender)} run {run_x:.2f}×, total {total_x:.2f}× "
            f"→ {verdict(run_x >= 8)} (run), {verdict(total_x >= 8)} (total)"
        )
    return out


def time_split(rows: list[Row], workload: str) -> list[list[str]]:
    """Where a whole command's time goes, from whole commands of the same run: the start
    (``startup``), what ``bulkimport`` does before its first import (``bulkimport-refused``,
    less the start) and the import itself (the rest). Rows: a part, then its seconds for each
    command measured; empty unless the parts and a ``bulkimport`` were measured."""

    def get(name: str) -> Row | None:
        return find(rows, workload, name)

    startup, refused = get("startup"), get("bulkimport-refused")
    if startup is None or refused is None:
        return []
    others = [
        r
        for r in rows
        if r.workload == workload
        and r.contender not in PHASES
        and (r.contender == "loop-command" or parse_ceiling(r.contender) or parse_bulkimport(r.contender))
    ]
    if not any(parse_bulkimport(r.contender) for r in others):
        return []
    start, before = startup.median("run"), refused.median("run") - startup.median("run")
    header = ["Part", *(label(r.contender) for r in others)]
    cells = [
        ["Interpreter start, Django set up", *(f"{start:.2f}" for _ in others)],
        [
            "Reading and validating the file, saving the job's rows",
            *(f"{before:.2f}" if parse_bulkimport(r.contender) else "–" for r in others),
        ],
        [
            "Importing the rows (the rest of the command)",
            *(
                f"{r.median('run') - start - (before if parse_bulkimport(r.contender) else 0):.2f}"
                for r in others
            ),
        ],
        ["Whole command", *(f"{r.median('run'):.2f}" for r in others)],
    ]
    return [header, *cells]


def chart(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r.workload for r in rows))
    fig, axes = plt.subplots(
        len(workloads),
        1,
        figsize=(10, 1.2 + sum(0.42 * sum(r.workload == w for r in rows) + 0.6 for w in workloads)),
        squeeze=False,
    )
    for ax, workload in zip(axes[:, 0], workloads, strict=True):
        group = [r for r in rows if r.workload == workload]
        base, ceiling = baseline_of(rows, workload), ceiling_of(rows, workload)
        names = [label(r.contender) for r in group]
        rates = [r.run_rate for r in group]
        colors = [
            "#2b7bba"
            if parse_bulkadmin(r.contender)
            else "#08306b"
            if parse_bulkimport(r.contender)
            else "#7b3294"
            if parse_ceiling(r.contender)
            else "#5aae61"
            if parse_celery(r.contender)
            else "#999999"
            if r.contender == "bulk_create"
            else "#e08a2c"
            for r in group
        ]
        y = range(len(group))
        ax.barh(y, rates, color=colors)
        totals = [r.total_rate for r in group]
        ax.scatter(
            [t for t in totals if t],
            [i for i, t in zip(y, totals, strict=True) if t],
            color="black",
            marker="|",
            s=120,
            zorder=3,
            label="bulkadmin incl. create_job",
        )
        ax.set_yticks(list(y), names, fontsize=8)
        ax.invert_yaxis()
        # A log scale only where the rates span more than 10x (bulk_create): on a log axis
        # bars of close rates start mid-axis and their differences look larger than they are.
        spread = max(rates) > 10 * min(rates)
        if spread:
            ax.set_xscale("log")
        ax.set_xlabel("rows per second (log scale)" if spread else "rows per second")
        ax.set_title(f"{workload}: {WORKLOADS[workload]}, {group[0].rows:,} rows", fontsize=10)
        for i, r in enumerate(group):
            text = f" {r.run_rate:,.0f}/s"
            if base:
                text += f"  {r.run_rate / base.run_rate:.1f}× baseline"
            if ceiling:
                text += f"  {r.run_rate / ceiling.run_rate:.2f}× ceiling"
            ax.text(r.run_rate, i, text, va="center", fontsize=7)
        if any(totals):
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlim(right=max(rates) * (12 if spread else 1.7))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- modes -------------------------------------------------------------------------------------
def command_line() -> str:
    url = os.environ.get("DATABASE_URL", "")
    prefix = f"DATABASE_URL={url} " if url else ""
    return f"{prefix}.venv/bin/python bench/run.py {shlex.join(sys.argv[1:])}".strip()


def code_revision() -> str:
    """The commit measured (``BENCH_CODE_REV`` when running from an exported tree)."""
    if os.environ.get("BENCH_CODE_REV"):
        return os.environ["BENCH_CODE_REV"]
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev


def environment(db: Database) -> str:
    import django

    return (
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Django {django.get_version()}, {db.describe()}, code at {code_revision()}"
    )


def csv_for(rows: int) -> Path:
    path = WORK / f"users-{rows}.csv"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        write_users(path.with_suffix(".tmp"), rows)
        path.with_suffix(".tmp").rename(path)
    return path


def run_table(args: argparse.Namespace, db: Database) -> None:
    plan: list[tuple[str, str, int]] = []
    for workload in args.workloads:
        rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)[workload]
        names = args.contenders or DEFAULT_CONTENDERS[workload]
        if args.chunk_sizes:
            names = [*names, *(f"bulkadmin-{args.chunk_workers}w-c{c}" for c in args.chunk_sizes)]
        plan += [(workload, name, rows) for name in names]
    results: dict[tuple[str, str], Row] = {(w, n): Row(w, n, rows, []) for w, n, rows in plan}
    started = time.monotonic()
    for repeat in range(args.repeats):
        for workload, name, rows in plan:
            url = db.fresh()
            m = measure(
                {"mode": "contender", "contender": name, "csv": str(csv_for(rows)), "rows": rows},
                child_env(url, workload),
            )
            results[(workload, name)].runs.append(m)
            timing = ", ".join(f"{k} {v:.2f}s" for k, v in m.timings.items())
            print(
                f"[{time.monotonic() - started:6.0f}s] repeat {repeat + 1}/{args.repeats} {workload} "
                f"{name:<22} {rows / m.timings['run']:9,.0f} rows/s ({timing}), "
                f"peak {m.peak_rss / 2**20:,.0f} MiB",
                flush=True,
            )
    measured = list(results.values())
    rows_ = [r for r in measured if r.contender not in PHASES]
    splits = {w: time_split(measured, w) for w in args.workloads}
    cells = table_cells(rows_)
    checks = targets(rows_, db.kind)
    elapsed = time.monotonic() - started
    print()
    print(format_text(cells))
    print()
    for workload, split in splits.items():
        if split:
            print(f"{workload}, where the time goes (seconds, medians):")
            print(format_text(split[1:], split[0], left=1))
            print()
    for line in checks:
        print(line)
    name = args.name or f"latest-{db.kind}"
    out_dir: Path = args.results_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{name}.png"
    chart(rows_, png, f"bulkadmin benchmark, {db.kind}, median of {args.repeats}")
    md = [
        f"# bulkadmin benchmark: {db.kind}",
        "",
        f"Command: `{command_line()}`",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M %Z')} in {elapsed / 60:.1f} min on {environment(db)}.",
        f"Median of {args.repeats} repeat(s), repeats interleaved. Workloads (a pre_save receiver): "
        + "; ".join(f"{w} {WORKLOADS[w]}" for w in args.workloads)
        + ". Every contender but bulk_create saves each user through save(), so the pre_save "
        "workload and the demo's post_save receiver (one Profile per user) run for every row.",
        "",
        "Rows/s (run) is the import itself; for bulkadmin, Total adds create_job (validation and "
        "saving the job's rows), as `bulkimport` does. `bulkimport --workers W (whole command)` is "
        "`python manage.py bulkimport FILE --workers W --no-progress` timed from its process start to "
        "its exit: interpreter start, Django setup, validation, job creation and the run. The ceiling "
        "is the least a save()-path importer can do: the rows split over N spawned processes, each "
        "setting Django up and then only calling create() in transactions of 100 rows. × baseline and "
        "× ceiling divide Rows/s (run) by that contender's rate in the same workload. Peak RSS is the "
        "sum over the contender's whole process tree (pool workers and forkserver included), sampled "
        "every 20 ms; shared pages count once per process.",
        "",
        format_markdown(cells),
        "",
        *(
            line
            for workload, split in splits.items()
            if split
            for line in (
                f"## {workload}: where the time goes",
                "",
                "Seconds, medians, from whole commands of this run: `startup` is the interpreter's start "
                "and `django.setup()` alone; `bulkimport-refused` is the default `bulkimport` on the same "
                "rows and one invalid row after them, which it reads, validates and saves as the job's "
                "rows before it refuses the file. The import is the rest of each command.",
                "",
                format_markdown(split[1:], split[0], left=1),
                "",
            )
        ),
        "## Targets",
        "",
        *(f"- {line}" for line in checks),
        "",
        f"![chart]({png.name})",
        "",
    ]
    (out_dir / f"{name}.md").write_text("\n".join(md), encoding="utf-8")
    print(f"\nWrote {out_dir / f'{name}.md'} and {png} ({elapsed / 60:.1f} min).")


def run_memory(args: argparse.Namespace, db: Database) -> None:
    started = time.monotonic()
    lines: list[str] = []
    peaks: dict[int, int] = {}
    workers = args.memory_workers or os.cpu_count() or 1
    for rows in args.memory_rows:
        m = measure({"mode": "memory", "rows": rows, "workers": workers}, child_env(db.fresh(), "W0"))
        peaks[rows] = m.phase_peaks["run"]
        line = (
            f"{rows:>9,} rows, {workers} workers: run phase {m.timings['run']:.1f}s "
            f"({rows / m.timings['run']:,.0f} rows/s), peak RSS of the run phase "
            f"{m.phase_peaks['run'] / 2**20:,.0f} MiB (insert {m.timings['insert']:.1f}s, "
            f"peak {m.phase_peaks.get('setup', 0) / 2**20:,.0f} MiB)"
        )
        report(lines, line)
    small, large = min(peaks), max(peaks)
    if small != large:
        growth = peaks[large] / peaks[small]
        met = "MET" if growth <= 1.2 else "NOT MET"
        verdict = f"{large:,}-row peak / {small:,}-row peak = {growth:.2f}× → {met} (≤ 1.2×)"
        print(verdict)
        lines.append(f"- Target: {verdict}")
    name = args.name or f"latest-{db.kind}-memory"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{name}.md").write_text(
        "\n".join(
            [
                f"# bulkadmin memory: {db.kind}",
                "",
                f"Command: `{command_line()}`",
                "",
                f"Run {time.strftime('%Y-%m-%d %H:%M %Z')} in {(time.monotonic() - started) / 60:.1f} min on "
                f"{environment(db)}. W0; the job's rows are saved with bulk_create (no validation), then "
                "only JobRunner.run() is measured: peak RSS of the whole process tree during the run phase.",
                "",
                *lines,
                "",
            ]
        ),
        encoding="utf-8",
    )
    print(f"Wrote {args.results_dir / f'{name}.md'}")


def run_validation(args: argparse.Namespace, db: Database) -> None:
    rows = args.validation_rows
    path = csv_for(rows)
    times = []
    for _ in range(args.repeats):
        m = measure({"mode": "validation", "csv": str(path)}, child_env(db.fresh(), "W0"))
        times.append(m.timings["run"])
        print(
            f"validate_file on {rows:,} rows: {m.timings['run']:.2f}s, "
            f"peak {m.phase_peaks['run'] / 2**20:,.0f} MiB",
            flush=True,
        )
    median = statistics.median(times)
    met = "MET" if median <= 3 * rows / 100_000 else "NOT MET"
    verdict = f"median {median:.2f}s for {rows:,} rows → {met} (≤ 3 s per 100,000 rows)"
    print(verdict)
    runs = ", ".join(f"{t:.2f}s" for t in times)
    about = f"bulkadmin.validation.validate_file with the users importer, runs: {runs}."
    write_results(args, db, "validation", about, [f"- Target: {verdict}"])


def run_confirm(args: argparse.Namespace, db: Database) -> None:
    """The admin's confirm on big files, its runner's reading of the rows, and how long another
    writer waits meanwhile."""
    lines: list[str] = []
    for rows in args.confirm_rows:
        path = csv_for(rows)
        m = measure({"mode": "confirm", "csv": str(path)}, child_env(db.fresh(), "W0"))
        wait = float(m.extra.get("longest_outside_wait", 0.0))
        line = (
            f"{rows:,} rows: the confirm request {m.timings['confirm']:.2f}s; the runner reading "
            f"them in {m.timings['reading']:.1f}s, peak {m.phase_peaks['run'] / 2**20:,.0f} MiB; "
            f"another connection's longest write wait meanwhile {wait:.2f}s"
        )
        report(lines, line)
    about = (
        "bulkadmin.jobs.confirm_upload (what the admin's Import button runs), then "
        "bulkadmin.jobs.prepare_job (what its runner runs first: the rows checked again and saved "
        "in chunks), while another connection updates a user's last_login every 20 ms."
    )
    write_results(args, db, "confirm", about, lines)


def run_export(args: argparse.Namespace, db: Database) -> None:
    """The failed-row downloads of jobs whose rows all failed: time and peak memory, CSV and
    XLSX, at each size (the issue's target: 100,000 rows as CSV in at most 3 s, memory flat)."""
    lines: list[str] = []
    for rows in args.export_rows:
        m = measure({"mode": "export", "rows": rows}, child_env(db.fresh(), "W0"))
        for file_format in ("csv", "xlsx"):
            line = (
                f"{rows:,} failed rows as {file_format.upper()}: {m.timings[file_format]:.2f}s, "
                f"{int(m.extra['bytes'][file_format]) / 2**20:,.2f} MiB written, peak RSS "
                f"{m.phase_peaks[file_format] / 2**20:,.0f} MiB"
            )
            report(lines, line)
    about = (
        "A finished job whose rows all failed; its failed-row download (the admin's view, as a "
        "superuser, through django.test.Client), read to its last byte: CSV streamed row by row, "
        "then XLSX through a write-only workbook. Peak RSS is the measuring process's, during "
        "that download."
    )
    write_results(args, db, "export", about, lines, title="failed-row downloads")


def report(lines: list[str], line: str) -> None:
    """Show a figure as it is measured, and keep it for the results file."""
    print(line, flush=True)
    lines.append(f"- {line}")


def write_results(
    args: argparse.Namespace, db: Database, kind: str, about: str, lines: list[str], title: str = ""
) -> None:
    """One measurement's results file (``latest-<database>-<kind>.md`` unless ``--name``): the
    command, the machine, what was measured, then a line per figure."""
    name = args.name or f"latest-{db.kind}-{kind}"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{name}.md").write_text(
        f"# bulkadmin {title or kind}: {db.kind}\n\nCommand: `{command_line()}`\n\n"
        f"{environment(db)}. {about}\n\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )
    print(f"Wrote {args.results_dir / f'{name}.md'}")


def comma_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def comma_ints(value: str) -> list[int]:
    return [int(v.replace("_", "")) for v in comma_list(value)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, help=f"Rows per workload (default {DEFAULT_ROWS}).")
    parser.add_argument("--repeats", type=int, help="Measurements per contender; the median is shown (3).")
    parser.add_argument(
        "--workloads", type=lambda v: [w.upper() for w in comma_list(v)], default=list(WORKLOADS)
    )
    parser.add_argument(
        "--contenders",
        type=comma_list,
        help="loop, baseline, import-export, bulk_create, ceiling[-<N>p], bulkadmin-<N>w[-<T>t][-c<chunk>], "
        "bulkimport-<N>w[-<T>t][-c<chunk>], celery-<N>w (default: all).",
    )
    parser.add_argument("--quick", action="store_true", help=f"One repeat of {QUICK_ROWS} rows: a smoke run.")
    parser.add_argument("--chunk-sizes", type=comma_ints, help="Add bulkadmin at these chunk sizes.")
    parser.add_argument("--chunk-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory", action="store_true", help="Only the memory measurement.")
    parser.add_argument("--memory-rows", type=comma_ints, default=[100_000, 1_000_000])
    parser.add_argument("--memory-workers", type=int)
    parser.add_argument("--validation", action="store_true", help="Only time validate_file.")
    parser.add_argument("--confirm", action="store_true", help="Only time the confirm (create_job).")
    parser.add_argument("--confirm-rows", type=comma_ints, default=[100_000, 1_000_000])
    parser.add_argument("--validation-rows", type=int, default=100_000)
    parser.add_argument("--export", action="store_true", help="Only time the failed-row downloads.")
    parser.add_argument("--export-rows", type=comma_ints, default=[10_000, 100_000])
    parser.add_argument("--name", help="Result file name without extension (default latest-<db>).")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS,
        help="Where the .md and .png go (default bench/results; a temporary directory for smoke runs).",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    for w in args.workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w}")
    for c in args.contenders or []:
        if not is_known(c):
            parser.error(f"unknown contender {c}")
    return args


def compile_sources() -> None:
    """Byte-compile this project's modules, as ``pip install`` does a package's: with
    ``PYTHONDONTWRITEBYTECODE`` set (as on this machine) every measured command compiled them
    afresh, about 0.1 s for ``bulkimport``'s, which no installed copy pays."""
    packages = [str(ROOT / name) for name in ("bulkadmin", "mysite", "bench")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    compile_sources()
    db = database_from_env()
    db.prepare()
    if args.memory:
        run_memory(args, db)
    elif args.validation:
        run_validation(args, db)
    elif args.confirm:
        run_confirm(args, db)
    elif args.export:
        run_export(args, db)
    else:
        run_table(args, db)


if __name__ == "__main__":
    main()
