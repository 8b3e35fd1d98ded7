"""The daily digest (issue 21), composed here once for the remind stage, which sends it at the local time
a person chose (settings' digest_at), and for GET /v1/digest, which shows the same: files captured on
this day of the month in earlier months and years, files related to what was captured yesterday, and the
reminders due today. Days are the user's own, in their time zone."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.neighbours import related

MOST = 10  # files per section at most
YESTERDAY_ASKED = 5  # of yesterday's files, this many look for related ones
RELATED_AT_LEAST = 0.5  # cosine of the connecting passages: below it, a neighbour is no news


def compose(c, user: str, day: date, zone: str) -> dict:
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tz)
    try:
        end, yesterday = start + timedelta(days=1), start - timedelta(days=1)
    except OverflowError:  # 0001-01-01 or 9999-12-31, asked for: a day with nothing before or after it
        end = yesterday = start
    file = "f.id AS file_id, f.filename AS name, f.category, f.captured_at"
    on_this_day = c.execute(
        f"""SELECT {file} FROM files f WHERE f.user_id = %s AND f.duplicate_of IS NULL AND f.status = 'ready'
               AND f.captured_at < %s AND extract(day FROM f.captured_at AT TIME ZONE %s) = %s
            ORDER BY f.captured_at DESC LIMIT %s""", (user, start, zone, day.day, MOST)).fetchall()  # nosec B608  # a fixed column list
    recent = c.execute(
        """SELECT id, filename FROM files WHERE user_id = %s AND status = 'ready' AND duplicate_of IS NULL
           AND captured_at >= %s AND captured_at < %s ORDER BY captured_at LIMIT %s""",
        (user, yesterday, start, YESTERDAY_ASKED)).fetchall()
    seen, linked = {r["id"] for r in recent}, []
    for r in recent:
        for near in related(c, user, r["id"], 3):
            if near["file_id"] not in seen and not near["duplicate"] and near["captured_at"] < yesterday \
                    and near["why"]["similarity"] >= RELATED_AT_LEAST:
                seen.add(near["file_id"])
                linked.append({k: near[k] for k in ("file_id", "name", "category", "captured_at")}
                              | {"because_of": r["filename"], "similarity": near["why"]["similarity"]})
    due = c.execute(
        """SELECT id AS reminder_id, title, next_at AS due_at FROM reminders
           WHERE user_id = %s AND status = 'scheduled' AND next_at >= %s AND next_at < %s
           ORDER BY next_at LIMIT %s""", (user, start, end, MOST)).fetchall()
    content = {"day": day.isoformat(), "timezone": zone, "on_this_day": on_this_day,
               "related_to_yesterday": linked[:MOST], "due_today": due}
    return json.loads(json.dumps(content, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))


def empty(content: dict) -> bool:
    return not (content["on_this_day"] or content["related_to_yesterday"] or content["due_today"])


def summary(content: dict) -> tuple[str, str]:
    """A notification's title and body: what there is, in a line each."""
    day = date.fromisoformat(content["day"])
    lines = []
    if files := content["on_this_day"]:
        lines.append(f"On this day: {', '.join(f['name'] for f in files[:3])}" + (" …" if len(files) > 3 else ""))
    if files := content["related_to_yesterday"]:
        lines.append(f"Related to yesterday: {', '.join(f['name'] for f in files[:3])}"
                     + (" …" if len(files) > 3 else ""))
    if due := content["due_today"]:
        lines.append(f"Due today: {', '.join(r['title'] for r in due[:3])}" + (" …" if len(due) > 3 else ""))
    return f"Your day, {day:%a %d %b}", "\n".join(lines)[:2000]
