"""The command's log output: text lines, or with `--log-format json` one JSON object per line.

A JSON line always has `time` (UTC, ISO 8601), `level`, `logger` and `message`; a request's line (the access
log, `tusserver.pipeline.middleware`) adds `request_id`, `method`, `path`, `status`, `duration_ms`,
`upload_id`, `bytes`, `error_code` and `remote_addr`, and an error's line its `exception`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from tusserver.pipeline.middleware import log_fields
from tusserver.settings import Settings

__all__ = ["JsonFormatter", "configure_logging", "granian_log_config"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (the message's own newlines are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            line.update(access)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(settings: Settings) -> None:
    """Send every log line (uvicorn's, granian's, ours) to stderr in the configured format, at its level."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    log_fields(settings.log_format == "json")
    # Neither format shows where a line was logged, nor its thread or process: each record would look them up (a
    # walk up the stack, a getpid), once per request for the access line (the logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def granian_log_config(settings: Settings) -> dict[str, object] | None:
    """What granian merges into its logging configuration: its own lines as JSON too, with `--log-format json`."""
    if settings.log_format != "json":
        return None
    json_formatter = {"()": f"{__name__}.JsonFormatter"}
    return {"formatters": {"generic": json_formatter, "access": json_formatter}}
