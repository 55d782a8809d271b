"""Logging: one JSON object per line in production, readable lines in development.

Everything logs through the standard library (``logging.getLogger(__name__)``) or structlog;
both end in the same structlog formatter, so uvicorn's, pymongo's and our own lines share one
format. The request id (and whatever else ``bind_request`` binds) is added to every line logged
while a request is handled, through structlog's context variables.

Never logged: tokens, API keys, passwords, and personal data (names, emails, phones, birthdays,
addresses). ``redact`` drops such keys wherever they appear and masks anything that looks like a
bearer token, JWT or API key inside a message, as a last line of defence.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "x-api-key",
        "password",
        "secret",
        "jwt",
        "jwt_secret",
        "cookie",
        "email",
        "phone",
        "display_name",
        "displayname",
        "name",
        "birthday",
        "address",
        "variables",
        "query",
    }
)
SECRET_PATTERNS = (
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),  # a JWT
    re.compile(r"lgk_[A-Za-z0-9_-]{8,}"),  # a partner API key
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),  # an email address
)


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


# Each secret pattern needs one of these to match, so a text without any is left as it is after
# one search instead of four substitutions (almost every logged string).
_MAYBE_SECRET = re.compile(r"(?i:bearer)|eyJ|lgk_|@")


def _mask(text: str) -> str:
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SENSITIVE_KEYS else _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Drop sensitive keys and mask secrets inside strings (the last processor before rendering)."""
    for key in list(event_dict):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        elif key != "exception":
            event_dict[key] = _clean(event_dict[key])
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = _mask(event_dict["exception"])
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line (it may be replaced after set-up)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


_WRITE_LOCK = threading.Lock()


class _StderrLogger:
    """Where structlog's own lines go: the rendered line straight to whatever ``sys.stderr`` is at the
    time, at the levels its standard-library namesake allows (``filter_by_level`` asks it).

    The same line the standard library's handler would write, without a log record (two, as
    structlog's formatter copies it), handler locks and the formatter round trip: about half the
    cost of the request summary line, which every request writes.
    """

    def __init__(self, stdlib: logging.Logger) -> None:
        self._stdlib = stdlib
        self.name = stdlib.name

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the standard library's name
        return self._stdlib.isEnabledFor(level)

    def getEffectiveLevel(self) -> int:  # noqa: N802
        return self._stdlib.getEffectiveLevel()

    def msg(self, message: str) -> None:
        with _WRITE_LOCK:
            stream = sys.stderr
            stream.write(message + "\n")
            stream.flush()

    debug = info = warning = error = critical = exception = msg


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def _enabled(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Drop a line its standard-library logger would not emit (its level, ``logging.disable``)."""
    if logger.isEnabledFor(_LEVELS.get(method_name, logging.INFO)):
        return event_dict
    raise structlog.DropEvent


class _StderrLoggerFactory(structlog.stdlib.LoggerFactory):
    """The standard library's logger of the name structlog would use (levels, name), wrapped."""

    def __call__(self, *args: Any) -> Any:
        return _StderrLogger(super().__call__(*args))


def configure_logging(fmt: str = "auto", *, production: bool = False, level: str = "INFO") -> LogFormat:
    """Route all logging through structlog; ``auto`` means JSON in production, console otherwise.

    Standard-library records (uvicorn, pymongo, ``logging.getLogger`` users) go through the root
    handler and structlog's formatter; structlog's own lines run the same processors and are
    written directly (``_StderrLogger``): one format, one stream.
    """
    chosen = LogFormat(fmt)
    if chosen is LogFormat.AUTO:
        chosen = LogFormat.JSON if production else LogFormat.CONSOLE
    renderer: Processor
    if chosen is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        final: list[Processor] = [structlog.processors.format_exc_info, redact, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        final = [redact, renderer]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own handlers would print a second, differently formatted copy of its lines.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("pymongo").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[_enabled, *_shared_processors(), *final],
        logger_factory=_StderrLoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return chosen


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


def _route_through_stdlib() -> None:
    """Before ``configure_logging`` runs (tests, an app embedding the gateway), structlog lines go to
    the standard library's handlers, whatever they are, instead of structlog's default print()."""
    if not structlog.is_configured():
        structlog.configure(
            processors=[*_shared_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )


_route_through_stdlib()


# -- the request's log record ------------------------------------------------------------------

_REQUEST: ContextVar[MutableMapping[str, Any] | None] = ContextVar("loyalty_request_log", default=None)


@contextmanager
def request_scope(request_id: str) -> Iterator[MutableMapping[str, Any]]:
    """Bind ``request_id`` to every log line of this request and collect fields for its summary line."""
    fields: MutableMapping[str, Any] = {}
    token = _REQUEST.set(fields)
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            yield fields
        finally:
            _REQUEST.reset(token)


def note_request(**fields: Any) -> None:
    """Add fields (operation name, principal kind, error codes) to the current request's summary line."""
    current = _REQUEST.get()
    if current is not None:
        current.update(fields)


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value is not None else None
