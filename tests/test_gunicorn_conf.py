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
