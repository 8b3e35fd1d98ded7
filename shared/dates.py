"""Dates as files write them, read into aware datetimes: a photo's EXIF (local time, with an offset only
where the camera wrote one), a PDF's `D:YYYYMMDDHHmmSS+HH'mm'`, ISO 8601 (a recording's creation_time,
an office document's dcterms:created). A date without a zone is taken in the user's zone; a date that
does not parse is None, never an error: when a thing was captured is a nicety, not a reason to fail."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)  # a camera whose clock was never set says 1970, 2000 or 2004
_PDF = re.compile(r"D?:?(\d{4})(\d\d)?(\d\d)?(\d\d)?(\d\d)?(\d\d)?\s*(Z|[+-]\d\d'?(?:\d\d'?)?)?")
_OFFSET = re.compile(r"([+-])(\d\d):?(\d\d)?")


def _zone(offset: str | None, tz: str):
    if not offset:
        return ZoneInfo(tz)
    if offset.strip().upper().startswith("Z"):
        return UTC
    m = _OFFSET.match(offset.replace("'", ":").strip())
    if not m:
        return ZoneInfo(tz)
    delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
    return timezone(-delta if m.group(1) == "-" else delta)


def exif(value: str | None, offset: str | None, tz: str) -> datetime | None:
    """EXIF's "2024:06:01 14:03:22" (DateTimeOriginal) with OffsetTimeOriginal's "+02:00", if any."""
    try:
        naive = datetime.strptime(str(value).strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
        return naive.replace(tzinfo=_zone(offset, tz))
    except (TypeError, ValueError, KeyError):
        return None


def pdf(value: str | None, tz: str) -> datetime | None:
    """A PDF date (ISO 32000 7.9.4): "D:20230415093000+02'00'", any part after the year optional."""
    m = _PDF.fullmatch((value or "").strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) if g else d for g, d in zip(m.groups()[:6], (0, 1, 1, 0, 0, 0),
                                                                                   strict=True))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=_zone(m.group(7), tz))
    except (ValueError, KeyError):
        return None


def iso(value: str | None, tz: str) -> datetime | None:
    """ISO 8601, as FFmpeg reports creation_time ("2024-06-01T14:03:22.000000Z") and OOXML and ODF write
    their creation dates."""
    try:
        when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    try:
        return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(tz))
    except KeyError:
        return None


def plausible(when: datetime | None) -> datetime | None:
    """The date, if a capture could have happened then: aware, after EARLIEST (cameras with unset
    clocks), not after a day from now."""
    if when is None or when.tzinfo is None or not EARLIEST <= when <= datetime.now(UTC) + timedelta(days=1):
        return None
    return when
