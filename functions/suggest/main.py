"""suggest: the future dates and times a file's text holds ("dentist on Friday at 3pm", "the invoice is
due 12 March") become suggested reminders, linked to the file and the sentence they came from. Dates
are read by dateparser relative to the upload time in the user's time zone; a date in the past
proposes nothing; a day without a time is suggested at 9:00."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

from psycopg.types.json import Jsonb

from events.catalogue import RemindersSuggested, TextExtracted
from shared import flags
from shared.stage import Context, Stage, serve
from shared.textdoc import passages

WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
# dateparser alone takes "we", "may", "sun" or "a month" for dates: a phrase counts only with an anchor,
# a full weekday, a relative day, a day and month name, a clock time, or an ISO date.
ANCHOR = re.compile(
    rf"\b({WEEKDAYS}|today|tonight|tomorrow)\b|\b\d{{1,2}}(st|nd|rd|th)?\s+({MONTHS})\b|\b({MONTHS})\s+\d{{1,2}}\b"
    r"|\b\d{1,2}(:\d\d)?\s*(am|pm)\b|\b\d{1,2}:\d\d\b|\b\d{4}-\d\d-\d\d\b", re.I)
PAST = re.compile(r"\b(last|ago|yesterday)\b", re.I)
SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
DAY_ONLY_AT = 9  # a reminder for a day without a time comes in the morning
MAX_PER_FILE, MAX_CHARS = 10, 200_000  # a long document is a source, not an agenda


def sentences(blobs, text_uri: str):
    """(sentence, locator) of every sentence that may hold a date, within the first MAX_CHARS."""
    budget = MAX_CHARS
    for part, locator in passages(blobs, text_uri):
        for m in SENTENCE.finditer(part[:budget]):
            if ANCHOR.search(m.group()):
                yield m.group().strip(), locator
        budget -= len(part)
        if budget <= 0:
            return


def dates(sentence: str, base: datetime, tz: str) -> list[tuple[str, datetime]]:
    """(phrase, when) of each future date in a sentence, as dateparser reads it from `base` in `tz`."""
    from dateparser.date import DateDataParser  # imported on first use: a cold start need not pay
    from dateparser.search import search_dates

    settings = {"RELATIVE_BASE": base.replace(tzinfo=None), "PREFER_DATES_FROM": "future", "TIMEZONE": tz,
                "TO_TIMEZONE": tz, "RETURN_AS_TIMEZONE_AWARE": True}
    found = []
    for phrase, when in search_dates(sentence, languages=["en"], settings=settings) or []:
        if not ANCHOR.search(phrase) or PAST.search(phrase):
            continue
        period = DateDataParser(languages=["en"], settings=settings | {"RETURN_TIME_AS_PERIOD": True}) \
            .get_date_data(phrase).period
        if period == "day":  # combined anew: the offset of midnight is not that of 9:00 on a DST day
            when = datetime.combine(when.date(), time(DAY_ONLY_AT), ZoneInfo(tz))
        if when > base:
            found.append((phrase, when))
    return found


class Suggest(Stage):
    name = "suggest"
    consumes = (TextExtracted,)

    def handle(self, event: TextExtracted, ctx: Context) -> RemindersSuggested:
        if not flags.enabled("suggest_reminders", event.user_id, ctx.cfg.flags):  # a gradual rollout
            ctx.detail.update(reminders=0, flag="suggest_reminders off for this user")
            return RemindersSuggested(file_id=event.file_id, user_id=event.user_id, reminders=0)
        row = ctx.db.execute("SELECT timezone FROM user_settings WHERE user_id = %s", (event.user_id,)).fetchone()
        tz = row["timezone"] if row else "UTC"
        base = ctx.file["created_at"].astimezone(ZoneInfo(tz))  # "on Friday" means the Friday after upload
        suggested = []
        for sentence, locator in sentences(ctx.blobs, event.text_uri):
            for _, when in dates(sentence, base, tz):
                key = f"{when.isoformat()}|{hashlib.sha1(sentence.encode(), usedforsecurity=False).hexdigest()[:12]}"
                suggested.append((sentence[:200], when, locator, key))
        for title, when, locator, key in suggested[:MAX_PER_FILE]:
            # The same suggestion twice (a redelivery, a replay) is one row; an accepted one stays as it is.
            ctx.db.execute(
                """INSERT INTO reminders (user_id, title, due_at, timezone, next_at, status, file_id, passage,
                                          locator, suggestion_key)
                   VALUES (%s, %s, %s, %s, %s, 'suggested', %s, %s, %s, %s)
                   ON CONFLICT (file_id, suggestion_key) DO NOTHING""",
                (event.user_id, title, when, tz, when, event.file_id, title, Jsonb(locator), key))
        ctx.detail.update(reminders=min(len(suggested), MAX_PER_FILE), timezone=tz)
        return RemindersSuggested(file_id=event.file_id, user_id=event.user_id,
                                  reminders=min(len(suggested), MAX_PER_FILE))


handle = serve(Suggest())
