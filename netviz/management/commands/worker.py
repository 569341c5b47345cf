"""python manage.py worker [--queue default|kernel|default,kernel]

A job worker: django-tasks' database worker (db_worker) on the given queues,
plus a watchdog that queues again (or fails, with the reason) the jobs whose
worker stopped (netviz.jobs.recover_stale).  Run the "kernel" queue only
where the process has CAP_NET_ADMIN; everything else without it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, connections

from netviz.jobs import recover_stale
from netviz.kernel.replay import kernel_available

log = logging.getLogger(__name__)

WATCH_SECONDS = 15.0


def _watch() -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        try:
            for pk in recover_stale():
                log.warning("job %s: its worker stopped; queued again or failed", pk)
        except DatabaseError as exc:  # a locked SQLite, a restarting server: try later
            log.warning("cannot look for stopped jobs: %s", exc)
        finally:
            connections.close_all()


class Command(BaseCommand):
    help = "Run jobs (kernel checks, live reads, imports, fleet runs) from the task queue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", default="default",
                            help="queues to take, comma-separated: default, kernel")
        parser.add_argument("--interval", type=float, default=0.5,
                            help="seconds between looks at an empty queue")
        parser.add_argument("--batch", action="store_true",
                            help="run what is queued, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        queues = [q.strip() for q in options["queue"].split(",") if q.strip()]
        if "kernel" in queues:
            ok, why = kernel_available()
            if not ok:
                self.stderr.write(f"warning: kernel checks will report: {why}")
        # Jobs a stopped worker left are queued again before this one starts
        # taking jobs (then every WATCH_SECONDS, in the background).
        for pk in recover_stale():
            self.stderr.write(f"job {pk}: its worker stopped; queued again or failed")
        connections.close_all()
        threading.Thread(target=_watch, daemon=True, name="netviz-job-watch").start()
        call_command("db_worker", queue_name=",".join(queues), interval=options["interval"],
                     batch=options["batch"], reload=False, startup_delay=False,
                     verbosity=options["verbosity"])
