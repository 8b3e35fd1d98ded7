"""Repeat rules and the dates in text, without the stack: python-dateutil's rrule kept in the
reminder's time zone, and the suggest stage's reading of dates (dateparser)."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from functions.suggest.main import dates, key_phrase
from shared import schedule

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=BERLIN)


def test_every_day_at_nine_in_berlin_stays_at_nine_across_the_dst_change():
    due = datetime(2026, 3, 27, 9, 0, tzinfo=BERLIN)  # Friday; clocks go forward on Sunday the 29th
    at, seen = due, []
    for _ in range(4):
        at = schedule.next_after(due, None, "Europe/Berlin", "FREQ=DAILY", at)
        seen.append(at.astimezone(BERLIN))
    assert [(d.day, d.hour, d.minute) for d in seen] == [(28, 9, 0), (29, 9, 0), (30, 9, 0), (31, 9, 0)]
    assert seen[0].utcoffset() != seen[-1].utcoffset()  # CET, then CEST: the same wall-clock time


def test_a_late_tick_moves_a_rule_to_its_first_occurrence_after_now_once():
    due = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    now = datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC)  # an hour of missed minutes
    assert schedule.next_after(due, due, "UTC", "FREQ=MINUTELY", now) == datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    assert schedule.next_after(due, due, "UTC", None, now) is None  # a one-off is done
    assert schedule.next_after(due, due, "UTC", "FREQ=DAILY;COUNT=1", now) is None  # an exhausted rule too


@pytest.mark.parametrize("tz,rule,error", [
    ("Mars/Olympus", None, "unknown time zone"),
    ("UTC", "FREQ=FORTNIGHTLY", "not an RFC 5545 RRULE"),
    ("UTC", "FREQ=WEEKLY;BYDAY=XX", "not an RFC 5545 RRULE"),
    ("UTC", "FREQ=SECONDLY", "at most once a minute"),
    ("UTC", "FREQ=HOURLY;BYSECOND=0,30", "at most once a minute"),
    ("UTC", "FREQ=MINUTELY;INTERVAL=0", "INTERVAL"),
    ("UTC", "rrule:FREQ=SECONDLY", "at most once a minute"),  # the prefix in any case hides nothing
    ("UTC", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never fires"),
    ("UTC", "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY", "without DTSTART"),
])
def test_bad_schedules_are_refused_with_the_reason(tz, rule, error):
    with pytest.raises(schedule.BadSchedule, match=error):
        schedule.first(datetime(2030, 1, 1, 9, tzinfo=UTC), tz, rule, datetime.now(UTC))


def test_a_due_time_in_the_past_or_without_an_offset_is_refused():
    with pytest.raises(schedule.BadSchedule, match="in the past"):
        schedule.first(datetime(2020, 1, 1, tzinfo=UTC), "UTC", None, datetime.now(UTC))
    with pytest.raises(schedule.BadSchedule, match="offset"):
        schedule.first(datetime(2030, 1, 1), "UTC", None, datetime.now(UTC))


@pytest.mark.parametrize("text,expected", [
    ("Dentist next Friday at 3pm.", (2026, 11, 27, 15, 0)),
    ("The invoice is due 12 March.", (2027, 3, 12, 9, 0)),  # a day without a time: 9:00
    ("Call the plumber on Thursday morning", (2026, 11, 26, 9, 0)),
    ("Lunch with Anna on December 3 at 12:30", (2026, 12, 3, 12, 30)),
    ("Pay the rent on 2026-12-01", (2026, 12, 1, 9, 0)),
])
def test_a_future_date_in_a_sentence_is_found_in_the_users_zone(text, expected):
    (_, when), = dates(text, MONDAY, "Europe/Berlin")
    assert when.astimezone(BERLIN).timetuple()[:5] == expected


@pytest.mark.parametrize("text", [
    "We met last Tuesday at 3pm.", "The meeting was on 3 March 2020 at 10am.", "I have 3 apples.",
    "Version 2.5 was released.", "May we see the sun on Sat?",
])
def test_past_dates_and_words_that_only_look_like_dates_suggest_nothing(text):
    assert dates(text, MONDAY, "Europe/Berlin") == []


def test_a_rule_continues_from_its_last_occurrence_and_a_count_from_its_first():
    due = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)  # fired every 7 minutes for almost two years
    last, now = datetime(2026, 11, 23, 8, 59, tzinfo=UTC), datetime(2026, 11, 23, 9, 0, 30, tzinfo=UTC)
    following = schedule.next_after(due, last, "UTC", "FREQ=MINUTELY;INTERVAL=7", now)
    assert following == datetime(2026, 11, 23, 9, 6, tzinfo=UTC)  # on the grid that due_at began
    assert schedule.next_after(due, last, "UTC", "FREQ=MINUTELY;COUNT=3", now) is None  # counted from due_at


def test_a_day_without_a_time_is_suggested_at_nine_also_on_the_day_the_clocks_change():
    base = datetime(2026, 3, 20, 10, 0, tzinfo=BERLIN)
    (_, when), = dates("The invoice is due 29 March.", base, "Europe/Berlin")
    local = when.astimezone(BERLIN)
    assert (local.month, local.day, local.hour, local.minute) == (3, 29, 9, 0)


@pytest.mark.parametrize("sentence,title", [
    ("Remember: dentist next Friday at 3pm.", "Dentist"),
    ("Dentist on Friday at 3pm, bring the insurance card.", "Dentist, bring the insurance card"),
    ("The invoice is due 12 March.", "The invoice is due"),
    ("We need to book the ferry by Monday", "Book the ferry"),
    ("Meeting with Sarah on Tuesday at 10am in the library", "Meeting with Sarah in the library"),
    ("Don't forget to call the bank tomorrow about the mortgage renewal and the new savings account rates",
     "Call the bank about the mortgage renewal and the new…"),
])
def test_a_suggested_reminders_title_is_its_sentence_trimmed_to_the_key_phrase(sentence, title):
    (phrase, _), *_ = dates(sentence, datetime(2026, 12, 3, 12, tzinfo=UTC), "UTC")
    assert key_phrase(sentence, phrase) == title
