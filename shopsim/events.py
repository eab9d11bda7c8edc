"""The shop's events as they are written: the contract's JSON text, its timestamps and record keys.

Downstream consumers parse these texts: field order and number formats are a contract. The daemon (producer.py)
writes random events with the same functions and adds the transport (record timestamp, event_id header).
"""

from __future__ import annotations

import json
import time

__all__ = ["FUNNEL_TYPES", "TimestampFormatter", "event_text", "json_name", "parse_time", "parse_timezone",
           "record_key", "session_fields"]

FUNNEL_TYPES = ("product_view", "add_to_cart", "checkout", "bounce")  # the event types a session walks through


def event_text(user_id: str, event_type: str, timestamp: str, product_id: str, session_length: str,
               extra: str = "") -> str:
    """An event's value as text, from its fields' JSON texts (event_type without quotes); extra: more
    metadata fields, each starting with a comma. Byte-identical to json.dumps(event, separators=(",", ":"),
    ensure_ascii=False) of the same event."""
    return (f'{{"user_id":{user_id},"event_type":"{event_type}","timestamp":"{timestamp}",'
            f'"metadata":{{"product_id":{product_id},"session_length":{session_length}{extra}}}}}')


def json_name(text: str) -> str:
    """A string's JSON text without its quotes (event types, ids with dashes)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def record_key(user_id: int | str) -> bytes:
    """The record key: the user id as decimal text, so that one user's events share a partition, in order."""
    return str(user_id).encode()


def session_fields(session_id: str, order_value: float | None = None, items: int | None = None) -> str:
    """Sessions mode's metadata fields after session_length, as `extra` for event_text(); a session id is
    "<user id>-<session number>", which needs no escaping."""
    if order_value is None:
        return f',"session_id":"{session_id}"'
    return f',"session_id":"{session_id}","order_value":{order_value!r},"items":{items}'


class TimestampFormatter:
    """Epoch milliseconds -> '2024-01-15T10:30:45.123Z', the events' timestamp text.

    At thousands of events per second most events share their minute (and many their millisecond)
    with the previous one, so the date-and-minute prefix is formatted once per minute, seconds and
    milliseconds come from tables, and the whole text is kept for the next event of the same
    millisecond.
    """

    __slots__ = ("_minute", "_prefix", "_ms", "_text")
    _SECONDS = tuple(f"{second:02d}." for second in range(60))
    _MILLIS = tuple(f"{milli:03d}Z" for milli in range(1000))

    def __init__(self) -> None:
        self._minute = self._ms = -1
        self._prefix = self._text = ""

    def __call__(self, epoch_ms: int) -> str:
        if epoch_ms == self._ms:
            return self._text
        minute, milli = divmod(epoch_ms, 60_000)
        if minute != self._minute:
            self._minute = minute
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        self._ms = epoch_ms
        self._text = f"{self._prefix}{self._SECONDS[milli // 1000]}{self._MILLIS[milli % 1000]}"
        return self._text


def parse_time(text: str) -> int | None:
    """ISO 8601 date-time (e.g. 2026-11-13T00:00:00Z; no zone means UTC) -> epoch ms, or None."""
    from datetime import datetime, timezone

    value = text.strip()
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("expected an ISO 8601 date-time such as 2026-11-13T00:00:00Z, or empty") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if not 1970 <= when.year <= 2200:
        raise ValueError("expected an ISO 8601 date-time between the years 1970 and 2200")
    return int(when.timestamp() * 1000)


def parse_timezone(text: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = text.strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name such as UTC, Europe/Paris or America/New_York") from None
    return value
