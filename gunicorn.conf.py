"""gunicorn settings that belong to the application, whoever starts it.

gunicorn reads ``./gunicorn.conf.py`` from its working directory by default (the Dockerfile's
WORKDIR, the repository root for the benchmark and the tests). Deployment choices (bind address,
workers, log destinations) stay on the command line.
"""

import os
import shutil
import tempfile

# One log line per request, the application's own (with its request id), and gunicorn's own
# lines in the application's LOG_FORMAT: see klikit_admin/gunicorn_logging.py.
logger_class = "klikit_admin.gunicorn_logging.Logger"

# gunicorn's heartbeat touches a file in worker_tmp_dir on every request; on a disk-backed
# filesystem that call "may block a worker for arbitrary time" (gunicorn's own documentation
# of worker_tmp_dir), for instance behind PostgreSQL's WAL fsyncs on the same disk. Keep it in
# memory where Linux (and Docker) offer /dev/shm.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"


def worker_exit(server, worker):
    """Write the usage counts this worker still holds before it exits (otherwise lost with it).

    gunicorn calls this in the worker on its way out (graceful stop, reload, max-requests); it
    can also call it in the arbiter for a worker already gone, where there is nothing to write.
    A worker killed outright (SIGKILL, the timeout) still loses its pending counts.
    """
    if os.getpid() != worker.pid:
        return
    try:
        from credentials.usage import flush_at_exit
    except Exception:  # the worker never loaded the application
        return
    flush_at_exit()


# --- Prometheus (credentials/metrics.py) ----------------------------------------------------
# prometheus-client's multiprocess mode: every worker writes its counts to files in
# PROMETHEUS_MULTIPROC_DIR and a scrape adds them up. The arbiter sets the directory before it
# forks a worker (so do not combine with --preload, which imports the application first),
# empties it at start (counts of an earlier run would be added to this one's), marks each dead
# worker's files, and removes a directory it created itself on exit.
_created_metrics_dir = None


def on_starting(server):
    global _created_metrics_dir
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))
    else:
        parent = "/dev/shm" if os.path.isdir("/dev/shm") else None
        directory = _created_metrics_dir = tempfile.mkdtemp(prefix="klikit-metrics-", dir=parent)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _created_metrics_dir:
        shutil.rmtree(_created_metrics_dir, ignore_errors=True)
