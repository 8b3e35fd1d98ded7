"""When reminders fire: RFC 5545 repeat rules expanded by python-dateutil in the reminder's own time
zone, so "every day at 9:00 Europe/Berlin" stays at 9:00 across a daylight-saving change. The API
checks a rule with it, and the remind stage moves a reminder to its next occurrence with it."""
from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

# Parts of an iCalendar body that are no rule: a DTSTART would override the reminder's due time.
NOT_A_RULE = ("DTSTART", "EXDATE", "RDATE", "EXRULE")


class BadSchedule(ValueError):
    """A time zone, due time or rule that cannot be kept; the message says why."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSchedule(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from None


def parse_rule(text: str, start: datetime) -> rrule:
    """An RRULE (without DTSTART) starting at `start`, refused if malformed or firing more often than
    once a minute."""
    body = normalise(text)
    upper = body.upper()
    if "\n" in body or any(k in upper for k in NOT_A_RULE):
        raise BadSchedule("give one RRULE without DTSTART, EXDATE or RDATE (the due time starts it)")
    parts = dict(p.partition("=")[::2] for p in upper.split(";") if p)
    if parts.get("FREQ") == "SECONDLY" or len(parts.get("BYSECOND", "").split(",")) > 1:
        raise BadSchedule("a reminder may fire at most once a minute")
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or int(interval) < 1:  # dateutil loops forever on INTERVAL=0
        raise BadSchedule(f"INTERVAL must be a whole number of at least 1, not {interval!r}")
    try:
        return rrulestr(body, dtstart=start)
    except (ValueError, TypeError) as e:
        raise BadSchedule(f"not an RFC 5545 RRULE: {e}") from None


def normalise(text: str) -> str:
    """The rule as stored: without an `RRULE:` prefix (in any case) or surrounding space."""
    return re.sub(r"(?i)^\s*rrule:", "", text).strip()


def first(due_at: datetime, tz: str, rule: str | None, now: datetime) -> datetime:
    """Check a new schedule; returns the due time in its zone."""
    if due_at.tzinfo is None:
        raise BadSchedule("due_at needs an offset, e.g. 2026-12-01T09:00:00+01:00")
    local = due_at.astimezone(zone(tz)).replace(microsecond=0)  # rrule keeps whole seconds only
    if local <= now:
        raise BadSchedule(f"due_at {due_at.isoformat()} is in the past")
    if rule and parse_rule(rule, local).after(local, inc=True) is None:
        raise BadSchedule("the rule never fires (no date matches it)")
    return local


def next_after(due_at: datetime, last: datetime | None, tz: str, rule: str | None,
               after: datetime) -> datetime | None:
    """The first occurrence strictly after `after`: a tick that comes late fires a missed reminder
    once and moves on, rather than once per missed occurrence. None once the rule is exhausted.
    The expansion starts at the last occurrence, not the first, so an old minutely reminder costs no
    more than a new one; only a COUNT needs the count from the start."""
    if not rule:
        return None
    start = due_at if last is None or "COUNT=" in rule.upper() else last
    return parse_rule(rule, start.astimezone(zone(tz))).after(after)
