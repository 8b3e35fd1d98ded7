"""The daily digest (issue 21): at the local time a person sets, the remind stage's minute tick composes
"on this day", "related to yesterday" and "due today" and sends it through notify, once per user and
day; GET /v1/digest shows the same; a day with nothing to say sends nothing."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fpdf import FPDF


def pdf_made(when: datetime, text: str) -> bytes:
    doc = FPDF()
    doc.set_creation_date(when)
    doc.add_page()
    doc.set_font("helvetica", size=14)
    doc.multi_cell(0, 8, text)
    return bytes(doc.output())


def midday_zone() -> str:
    """A zone where it is now between 08:00 and 16:00, so that "today" has room before and after."""
    for offset in range(-12, 15):
        zone = f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"  # Etc/GMT-3 is UTC+3
        if 8 <= datetime.now(ZoneInfo(zone)).hour < 16:
            return zone
    raise AssertionError("no zone at midday")


def wait(fn, timeout: float = 100, what: str = ""):
    deadline = time.monotonic() + timeout
    while not (got := fn()):
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(1)
    return got


def test_a_digest_comes_once_at_its_time_with_what_there_is_to_say(user, other_user, sql):
    zone = midday_zone()
    now = datetime.now(ZoneInfo(zone))
    # This day of the month, a month ago (a year ago, on the 29th and later, which some months lack).
    then = (now.replace(day=1) - timedelta(days=1)).replace(day=now.day) if now.day <= 28 else \
        now.replace(year=now.year - 1)
    yesterday, long_ago = now - timedelta(days=1), now - timedelta(days=40)
    files = user.upload_all({
        "then": ("harbour-2025.pdf", pdf_made(then.astimezone(UTC), "Harbour festival fireworks and the "
                                                                            "lantern parade along the pier.")),
        "yesterday": ("kiln.pdf", pdf_made(yesterday.astimezone(UTC), "Pottery class: glaze the bowls and load "
                                                                       "the kiln on Thursday evening.")),
        "older": ("pottery.pdf", pdf_made(long_ago.astimezone(UTC), "Pottery studio notes: the kiln fires "
                                                                      "glazed bowls at 1200 degrees.")),
    })
    assert all(f["status"] == "ready" for f in files.values())
    due = (now + timedelta(hours=3)).astimezone(UTC).isoformat()
    assert user.http.post("/v1/reminders", json={"title": "collect the bowls", "due_at": due}).status_code == 201
    digest_at = f"{now:%H:%M}"
    for who in (user, other_user):  # the other has nothing to say
        r = who.http.put("/v1/settings", json={"timezone": zone, "digest_at": digest_at})
        assert r.status_code == 200 and r.json()["digest_at"].startswith(digest_at)

    def digests(who):
        return [n for n in who.http.get("/v1/notifications").json() if n["kind"] == "digest"]

    (sent,) = wait(lambda: digests(user), what="digest")
    shown = user.http.get("/v1/digest").json()
    assert shown["sent"] is True and shown["day"] == f"{now:%Y-%m-%d}"
    assert [f["name"] for f in shown["on_this_day"]] == ["harbour-2025.pdf"]
    assert [f["name"] for f in shown["related_to_yesterday"]] == ["pottery.pdf"]
    assert shown["related_to_yesterday"][0]["because_of"] == "kiln.pdf"
    assert [r["title"] for r in shown["due_today"]] == ["collect the bowls"]
    assert "harbour-2025.pdf" in sent["body"] and "collect the bowls" in sent["body"]
    # The next tick sends nothing again, to either; the other's day was recorded as having nothing to say.
    tick = sql("SELECT now() AS t")[0]["t"]
    wait(lambda: sql("SELECT 1 FROM consumed_events WHERE consumer = 'remind' AND consumed_at > %s", tick),
         what="later tick")
    assert len(digests(user)) == 1 and digests(other_user) == []
    assert other_user.http.get("/v1/digest").json()["sent"] is False
    # Another day is composed as it would be, unsent.
    earlier = user.http.get("/v1/digest", params={"date": f"{now - timedelta(days=3):%Y-%m-%d}"}).json()
    assert earlier["sent"] is None
