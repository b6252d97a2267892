"""The gateway's line per request written directly (credentials/log_line.py): the same bytes.

While logging is configured as shipped, :class:`credentials.log_line.LineWriter` writes the line
itself; these tests hold it to what the logging system writes for the same line
(python-json-logger's own walk over the record) and check that any other configuration, and a
failing stream, go through the logging system as before.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import random

import pytest

from credentials import log_format, log_line
from credentials.log_format import JsonFormatter, RequestIdFilter, iso_time
from credentials.log_redaction import RedactSecretsFilter

INSTANT = 1_800_000_000.1257
FIELDS = {
    "endpoint": "verify",
    "outcome": "ok",
    "status": 200,
    "partner_key": "pk_5lj6QpTdslVtIEQ86xK650",
    "duration_ms": 0.42,
    "client": "192.0.2.7",
    "method": "POST",
}
REQUEST_ID = "req_3f7eb4b3-a949-4e09-9746-9fde14ee3cfb"


def args_for(fields):
    return (
        REQUEST_ID,
        fields["method"],
        fields["client"] or "-",
        fields["endpoint"],
        fields["outcome"],
        fields["status"],
        fields["partner_key"] or "-",
        0.4213,
    )


@pytest.fixture
def shipped(request):
    """The root logger as klikit_admin/settings.py configures it, writing to a StringIO.

    Installed in the test's own call (pytest adds its capturing handlers to the root logger
    for each phase of a test, the fixture's included) by calling ``shipped.install()``.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecretsFilter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logger = logging.getLogger("klikit.test.line")
    writer = log_line.LineWriter(logger, clock=lambda: INSTANT)

    def install():
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        return writer, stream, handler

    try:
        yield install
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logger.handlers.clear()
        logger.filters.clear()
        logger.disabled, logger.propagate = False, True


def generic_line(logger_name, fields):
    """What python-json-logger writes for the line's record, without the fast branches."""
    record = logging.LogRecord(
        logger_name, logging.INFO, __file__, 0, log_line.MESSAGE, args_for(fields), None
    )
    record.__dict__.update(fields)
    record.request_id = REQUEST_ID
    record.created = INSTANT
    formatter = JsonFormatter()
    return formatter.format(record)


@pytest.mark.parametrize(
    "fields",
    [
        FIELDS,
        {**FIELDS, "partner_key": None, "client": None, "outcome": "auth_missing", "status": 401},
        {**FIELDS, "duration_ms": 1234.5, "method": "OTHER", "client": "2001:db8::1"},
        {**FIELDS, "endpoint": "forward-auth", "duration_ms": 0.0, "status": 403},
    ],
)
def test_the_direct_line_is_the_line_the_logging_system_writes(shipped, fields):
    writer, stream, _ = shipped()
    writer.write(args_for(fields), fields, REQUEST_ID)
    assert writer._plan[1] is not None  # written directly
    written = stream.getvalue()
    assert written == generic_line(writer.logger.name, fields) + "\n"
    line = json.loads(written)
    assert line["pid"] == os.getpid() and line["time"] == "2027-01-15T08:00:00.125Z"
    assert line["message"].startswith(f"gateway request_id={REQUEST_ID} method=")


def test_another_handler_gets_the_line_through_the_logging_system(shipped):
    writer, stream, _ = shipped()
    writer.write(args_for(FIELDS), FIELDS, REQUEST_ID)
    caught = []
    other = logging.Handler()
    other.emit = caught.append
    logging.getLogger().addHandler(other)
    writer.write(args_for(FIELDS), FIELDS, REQUEST_ID)
    assert writer._plan[1] is None
    assert [r.getMessage() for r in caught] == [log_line.MESSAGE % args_for(FIELDS)]
    assert caught[0].endpoint == "verify" and caught[0].request_id == REQUEST_ID
    direct, through = (json.loads(line) for line in stream.getvalue().splitlines())
    direct.pop("time"), through.pop("time")  # a record takes its time from time.time()
    assert direct == through  # the shipped handler wrote the same line both ways
    logging.getLogger().removeHandler(other)
    writer.write(args_for(FIELDS), FIELDS, REQUEST_ID)
    assert writer._plan[1] is not None  # back to the direct write


@pytest.mark.parametrize(
    "change",
    [
        lambda logger, handler: logger.addFilter(lambda record: False),
        lambda logger, handler: handler.addFilter(lambda record: False),
        lambda logger, handler: handler.setLevel(logging.WARNING),
        lambda logger, handler: setattr(logger, "disabled", True),
        lambda logger, handler: setattr(logger, "propagate", False),
    ],
    ids=["logger filter", "handler filter", "handler level", "disabled", "not propagated"],
)
def test_a_filter_level_or_switch_of_someone_elses_is_obeyed(shipped, change):
    writer, stream, handler = shipped()
    change(writer.logger, handler)
    writer.write(args_for(FIELDS), FIELDS, REQUEST_ID)
    assert writer._plan[1] is None
    assert stream.getvalue() == ""


def test_the_plain_format_goes_through_the_logging_system(shipped):
    writer, stream, handler = shipped()
    handler.setFormatter(logging.Formatter(log_format.PLAIN))
    writer.write(args_for(FIELDS), FIELDS, REQUEST_ID)
    assert writer._plan[1] is None
    assert stream.getvalue().rstrip().endswith(log_line.MESSAGE % args_for(FIELDS))


def test_a_failing_stream_goes_to_the_handlers_error_handling(shipped, monkeypatch):
    writer, _, handler = shipped()
    handler.setStream(io.StringIO())
    handler.stream.close()
    failed = []
    monkeypatch.setattr(handler, "handleError", failed.append)
    writer.write(args_for(FIELDS), FIELDS, REQUEST_ID)  # does not raise
    assert [r.getMessage() for r in failed] == [log_line.MESSAGE % args_for(FIELDS)]


def test_a_value_json_would_write_otherwise_goes_through_the_logging_system(shipped):
    writer, stream, _ = shipped()
    odd = {**FIELDS, "duration_ms": float("nan")}
    writer.write(args_for(odd), odd, REQUEST_ID)
    assert json.loads(stream.getvalue().replace("NaN", "null"))["duration_ms"] is None


def test_the_formatters_own_fast_branch_writes_what_python_json_logger_writes():
    """The line that goes through logging (caplog, another handler) carries LINE_FIELDS."""
    formatter = JsonFormatter()

    def record(**extra):
        made = logging.getLogger("klikit.gateway").makeRecord(
            "klikit.gateway", logging.INFO, __file__, 1, "gateway status=%s", (200,), None,
            extra=extra,
        )  # fmt: skip
        made.request_id = REQUEST_ID
        made.created = 1_800_000_000.125  # both records at the same instant
        return made

    generic = formatter.format(record(**FIELDS))  # python-json-logger's own walk
    fast = formatter.format(record(**FIELDS, **{log_format.LINE_FIELDS: FIELDS}))
    assert fast == generic
    assert log_format.LINE_FIELDS not in generic
    assert json.loads(fast)["partner_key"] == "pk_5lj6QpTdslVtIEQ86xK650"


def reference_time(created):
    moment = dt.datetime.fromtimestamp(created, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_the_time_stamp_is_what_datetime_writes():
    draw = random.Random(14)
    instants = [draw.uniform(-2e9, 4e9) for _ in range(20_000)]
    instants += [1_800_000_000 + k / 1e6 + 5e-7 for k in range(0, 1_000_000, 997)]  # half-micro
    instants += [1_800_000_000.9995, 1_800_000_000.9999995, 1.9999996, -0.0000005, -1.5, 0.0]
    assert [iso_time(t) for t in instants] == [reference_time(t) for t in instants]
