"""gunicorn.conf.py: no access lines, gunicorn's lines in LOG_FORMAT, the heartbeat in memory."""

from __future__ import annotations

import datetime as dt
import os
import runpy
from pathlib import Path
from types import SimpleNamespace

from gunicorn.config import Config

from klikit_admin.gunicorn_logging import Logger

ROOT = Path(__file__).resolve().parent.parent


def _access_log(tmp_path: Path, path: str) -> str:
    log_file = tmp_path / "access.log"
    cfg = Config()
    cfg.set("accesslog", str(log_file))
    logger = Logger(cfg)
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
    }
    response = SimpleNamespace(status="200 OK", sent=2, headers=[], response_length=2)
    request = SimpleNamespace(headers=[])
    logger.access(response, request, environ, dt.timedelta(milliseconds=1))
    for handler in logger.access_log.handlers:
        handler.flush()
    return log_file.read_text() if log_file.exists() else ""


def test_gateway_requests_get_no_gunicorn_access_line(tmp_path):
    assert _access_log(tmp_path, "/api/v1/verify") == ""


def test_console_requests_get_none_either_the_application_logs_them(tmp_path):
    assert _access_log(tmp_path, "/credentials/") == ""


def test_gunicorn_conf_selects_the_logger():
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    cfg = Config()
    cfg.set("logger_class", settings["logger_class"])
    assert cfg.logger_class is Logger


def test_gunicorn_conf_keeps_the_heartbeat_file_in_memory_where_it_can():
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    if Path("/dev/shm").is_dir():
        assert settings["worker_tmp_dir"] == "/dev/shm"
    else:
        assert "worker_tmp_dir" not in settings


def test_worker_exit_writes_pending_usage_in_the_worker_only(monkeypatch):
    from credentials import usage

    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    calls = []
    monkeypatch.setattr(usage, "flush_at_exit", lambda: calls.append("flushed"))
    settings["worker_exit"](None, SimpleNamespace(pid=os.getpid()))
    assert calls == ["flushed"]
    settings["worker_exit"](None, SimpleNamespace(pid=os.getpid() + 1))  # in the arbiter
    assert calls == ["flushed"]


def test_the_arbiter_creates_empties_and_removes_the_metrics_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    conf["on_starting"](None)
    created = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert created.is_dir() and not any(created.iterdir())
    (created / "counter_4242.db").write_bytes(b"x")
    conf["on_exit"](None)
    assert not created.exists()

    given = tmp_path / "metrics"  # an operator's own directory: emptied of old counts, kept
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"stale")
    (given / "README").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    conf["on_starting"](None)
    assert sorted(p.name for p in given.iterdir()) == ["README"]
    conf["on_exit"](None)
    assert given.is_dir()


def test_a_dead_workers_live_gauge_files_are_marked(monkeypatch, tmp_path):
    from prometheus_client import multiprocess

    marked = []
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(
        multiprocess, "mark_process_dead", lambda pid, path=None: marked.append(pid)
    )
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    conf["child_exit"](None, SimpleNamespace(pid=4242))
    assert marked == [4242]


def test_gunicorns_own_lines_follow_log_format(tmp_path, monkeypatch):
    import json

    log_file = tmp_path / "error.log"
    for fmt, check in (("json", json.loads), ("plain", lambda line: "INFO gunicorn.error" in line)):
        monkeypatch.setenv("LOG_FORMAT", fmt)
        cfg = Config()
        cfg.set("errorlog", str(log_file))
        cfg.set("loglevel", "info")
        logger = Logger(cfg)
        logger.info("Booting worker with pid: %s", 4242)
        for handler in logger.error_log.handlers:
            handler.flush()
        line = log_file.read_text().splitlines()[-1]
        record = check(line)
        assert record
        if fmt == "json":
            assert record["logger"] == "gunicorn.error" and record["request_id"] is None
            assert record["message"] == "Booting worker with pid: 4242"
