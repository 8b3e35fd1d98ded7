"""Closing the loop, against the real stack: reminders fired by the per-minute tick exactly once,
suggestions from the dates in notes, pushes through the real firebase-admin to a loopback FCM, backups
through the real google-cloud-storage client to the storage emulator, and one user's things invisible
to another."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from events import wire

from fakes import QUOTA, UNREGISTERED


def soon(seconds: float = 2) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def tick(stack, n: int = 1) -> None:
    """n ticks of the reminders PingSource at once, through the broker, as overlapping ticks arrive."""
    def post():
        headers, body = wire.binary(wire.ping("reminders-every-minute", '{"task": "reminders"}',
                                              {"task": "reminders"}))
        assert httpx.post(stack.broker_url, headers=headers, content=body, timeout=30).status_code == 202
    threads = [threading.Thread(target=post) for _ in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]


def wait_for(fn, timeout: float = 60, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := fn():
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what or fn}")


def notifications(user, kind: str | None = None) -> list[dict]:
    items = user.http.get("/v1/notifications").json()
    return [n for n in items if kind is None or n["kind"] == kind]


def remind(user, **body) -> dict:
    r = user.http.post("/v1/reminders", json={"title": "call the plumber", "due_at": soon()} | body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.on_containers
def test_a_due_reminder_fires_exactly_once_although_ticks_race(stack, user, sql):
    r = remind(user)
    time.sleep(2.5)
    tick(stack, 3)  # three overlapping ticks (and the stack's own per-minute one may join them)
    wait_for(lambda: notifications(user, "reminder"), what="the reminder's notification")
    time.sleep(3)  # whatever a second firing would have caused has had time to arrive
    fired = notifications(user, "reminder")
    assert len(fired) == 1 and fired[0]["reminder_id"] == r["id"] and fired[0]["title"] == "call the plumber"
    done = user.http.get(f"/v1/reminders/{r['id']}").json()
    assert done["status"] == "done" and done["fired"] == 1 and done["next_at"] is None


def test_a_repeating_reminder_fires_again_on_its_next_occurrence(stack, user, sql):
    r = remind(user, title="stretch", rrule="FREQ=MINUTELY;INTERVAL=5")
    time.sleep(2.5)
    tick(stack)
    wait_for(lambda: len(notifications(user, "reminder")) == 1, what="the first firing")
    first = user.http.get(f"/v1/reminders/{r['id']}").json()
    assert first["status"] == "scheduled" and first["fired"] == 1
    assert datetime.fromisoformat(first["next_at"]) - datetime.fromisoformat(r["due_at"]) == timedelta(minutes=5)
    sql("UPDATE reminders SET next_at = now() - interval '1 second' WHERE id = %s", r["id"])  # 5 minutes on
    tick(stack)
    wait_for(lambda: len(notifications(user, "reminder")) == 2, what="the second firing")
    again = user.http.get(f"/v1/reminders/{r['id']}").json()
    assert again["fired"] == 2 and datetime.fromisoformat(again["next_at"]) > datetime.now(UTC)


def test_a_late_tick_fires_each_missed_reminder_once(stack, user, sql):
    once = remind(user, title="water the plants", due_at=soon(60))
    every = remind(user, title="drink water", due_at=soon(60), rrule="FREQ=MINUTELY")
    # As if the stack had been stopped for an hour: both fell due long ago, the repeating one 60 times.
    sql("UPDATE reminders SET next_at = now() - interval '1 hour', due_at = now() - interval '1 hour'"
        " WHERE id IN (%s, %s)", once["id"], every["id"])
    tick(stack)
    wait_for(lambda: len(notifications(user, "reminder")) == 2, what="both missed reminders")
    time.sleep(2)
    assert sorted(n["title"] for n in notifications(user, "reminder")) == ["drink water", "water the plants"]
    assert user.http.get(f"/v1/reminders/{every['id']}").json()["fired"] == 1


@pytest.mark.on_containers
def test_a_note_with_a_future_date_gets_a_suggested_reminder_and_accepting_schedules_it(user):
    assert user.http.put("/v1/settings", json={"timezone": "Europe/Berlin"}).status_code == 200
    f = user.upload("dentist.md", b"Remember: dentist next Friday at 3pm. Bring the insurance card.").json()
    done = user.wait(f["id"])
    assert done["status"] == "ready" and done["stages"]["suggest"]["status"] == "done"
    (s,) = done["reminders"]
    due = datetime.fromisoformat(s["due_at"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert s["status"] == "suggested" and (due.weekday(), due.hour, due.minute) == (4, 15, 0)
    assert timedelta(0) < due - datetime.now(UTC) <= timedelta(days=14)
    assert s["title"] == "Dentist" and s["file_id"] == f["id"] and "dentist next Friday" in s["passage"]
    assert [r["id"] for r in user.http.get("/v1/reminders", params={"status": "suggested"}).json()] == [s["id"]]
    accepted = user.http.patch(f"/v1/reminders/{s['id']}", json={"status": "scheduled"}).json()
    assert accepted["status"] == "scheduled" and accepted["next_at"] == accepted["due_at"]


def test_a_note_with_a_past_date_suggests_nothing(user):
    f = user.upload("history.md", b"We met Anna on 3 March 2020 at 10am and talked about the budget.").json()
    done = user.wait(f["id"])
    assert done["status"] == "ready" and done["reminders"] == []


def test_pushes_go_through_fcm_an_unregistered_token_is_removed(stack, user, fcm):
    for token in ("good-device-token", "gone-device-token"):
        assert user.http.post("/v1/devices", json={"token": token, "platform": "android"}).status_code == 201
    fcm.script["gone-device-token"].append(UNREGISTERED)
    remind(user, title="take out the bins")
    time.sleep(2.5)
    tick(stack)
    (n,) = wait_for(lambda: notifications(user, "reminder"), what="the notification")
    assert n["channel"] == "fcm" and n["status"] == "sent"
    (message,) = fcm.to("good-device-token")
    assert message["notification"] == {"title": "take out the bins", "body": message["notification"]["body"]}
    assert message["data"]["kind"] == "reminder" and message["data"]["reminder_id"] == str(n["reminder_id"])
    assert [d["token"] for d in user.http.get("/v1/devices").json()] == ["good-device-token"]


def test_a_transient_fcm_error_is_retried_and_then_delivered(stack, user, fcm):
    user.http.post("/v1/devices", json={"token": "flaky-device-token", "platform": "ios"})
    fcm.script["flaky-device-token"] += [QUOTA, QUOTA]  # FCM's quota error, not retried by the SDK itself
    remind(user, title="pick up the parcel")
    time.sleep(2.5)
    tick(stack)
    (n,) = wait_for(lambda: notifications(user, "reminder"), what="the delivered notification")
    assert n["status"] == "sent" and fcm.attempts["flaky-device-token"] == 3  # the broker retried twice
    assert len(fcm.to("flaky-device-token")) == 1


@pytest.mark.on_containers
def test_notify_on_ready_tells_the_user_a_file_is_ready(user, fcm):
    user.http.put("/v1/settings", json={"notify_on_ready": True})
    user.http.post("/v1/devices", json={"token": "ready-device-token", "platform": "web"})
    f = user.upload("bread.md", b"A sourdough recipe: flour, water, salt and patience.").json()
    user.wait(f["id"])
    (n,) = wait_for(lambda: notifications(user, "file.ready"), what="the file.ready notification")
    assert n["file_id"] == f["id"] and "bread.md" in n["title"] and n["status"] == "sent"


def test_notify_on_ready_tells_the_user_a_file_could_not_be_read(user):
    user.http.put("/v1/settings", json={"notify_on_ready": True})
    f = user.upload("song.txt", bytes(range(256)) * 64).json()  # random bytes named as a note
    assert user.wait(f["id"])["status"] in ("unsupported", "failed")
    (n,) = wait_for(lambda: notifications(user, "file.failed"), what="the file.failed notification")
    assert n["file_id"] == f["id"] and "song.txt" in n["title"] and n["body"]


def gcs_client(gcs):
    return storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs.url})


def bucket_blobs(gcs, bucket: str) -> dict:
    return {b.name: b for b in gcs_client(gcs).list_blobs(bucket)}


def owned_by(gcs, bucket: str, *users: str) -> None:
    """The bucket's owner object, as its owner puts it there (see the README's Backup section)."""
    gcs_client(gcs).bucket(bucket).blob("mindspace-owner.txt").upload_from_string("\n".join(users))


@pytest.mark.on_containers
def test_a_ready_file_is_backed_up_and_its_copy_deleted_with_it(user, gcs):
    owned_by(gcs, "mindspace-backup", "someone-else", user.name)
    assert user.http.put("/v1/settings", json={"backup_bucket": "mindspace-backup"}).status_code == 200
    data = b"Passport number and the insurance policy are in the blue folder. " * 1200  # resumable (> 64 KiB)
    f = user.upload("papers.txt", data).json()
    assert f["backup"] == {"status": "pending", "uri": None, "reason": None}
    user.wait(f["id"])
    backup = wait_for(lambda: (b := user.file(f["id"])["backup"]) and b["status"] != "pending" and b,
                      what="the backup")
    assert backup["status"] == "done", backup
    name = backup["uri"].removeprefix("gs://mindspace-backup/")
    blob = bucket_blobs(gcs, "mindspace-backup")[name]
    assert blob.download_as_bytes() == data
    assert blob.metadata["mindspace-file-id"] == f["id"] and blob.metadata["mindspace-user-id"] == user.name
    assert user.http.delete(f"/v1/files/{f['id']}").status_code == 204
    wait_for(lambda: name not in bucket_blobs(gcs, "mindspace-backup"), what="the copy to be deleted")


def test_a_bucket_it_cannot_write_to_ends_the_backup_as_failed_with_the_reason(user):
    user.http.put("/v1/settings", json={"backup_bucket": "no-such-bucket-here"})
    f = user.upload("note.txt", b"a note whose backup cannot be written anywhere").json()
    assert user.wait(f["id"])["status"] == "ready"
    backup = wait_for(lambda: (b := user.file(f["id"])["backup"]) and b["status"] != "pending" and b)
    assert backup["status"] == "failed" and "no-such-bucket-here" in backup["reason"]
    assert "roles/storage.objectUser" in backup["reason"]


def test_a_bucket_that_does_not_name_the_user_gets_none_of_their_files(user, other_user, gcs):
    owned_by(gcs, "mindspace-backup", other_user.name)  # someone else's bucket, which the service account can write
    user.http.put("/v1/settings", json={"backup_bucket": "mindspace-backup"})
    f = user.upload("diary.txt", b"a private diary entry that must not land in a stranger's bucket").json()
    user.wait(f["id"])
    backup = wait_for(lambda: (b := user.file(f["id"])["backup"]) and b["status"] != "pending" and b)
    assert backup["status"] == "failed" and "does not name your user id" in backup["reason"]
    assert not [n for n in bucket_blobs(gcs, "mindspace-backup") if f["id"] in n]


@pytest.mark.parametrize("body,error", [
    ({"due_at": "2020-01-01T09:00:00+00:00"}, "in the past"),
    ({"timezone": "Nowhere/Land"}, "unknown time zone"),
    ({"rrule": "FREQ=SOMETIMES"}, "RRULE"),
    ({"rrule": "FREQ=SECONDLY"}, "once a minute"),
    ({"due_at": "2030-01-01T09:00:00"}, "timezone"),  # no offset: pydantic's AwareDatetime says so
])
def test_bad_reminders_get_422_with_the_reason(user, body, error):
    r = user.http.post("/v1/reminders", json={"title": "x", "due_at": soon(3600)} | body)
    assert r.status_code == 422 and error.lower() in r.text.lower(), r.text


def test_bad_settings_get_422(user):
    assert user.http.put("/v1/settings", json={"timezone": "Mars/Base"}).status_code == 422
    assert user.http.put("/v1/settings", json={"backup_bucket": "Not A Bucket!"}).status_code == 422
    assert user.http.put("/v1/settings", json={"digest_at": "25:00"}).status_code == 422
    assert user.http.get("/v1/settings").json() == {"timezone": "UTC", "notify_on_ready": False,
                                                     "backup_bucket": None, "languages": None, "digest_at": None}


def test_another_users_reminders_devices_and_notifications_are_invisible(stack, user, other_user):
    mine = remind(user, due_at=soon(3600))
    user.http.post("/v1/devices", json={"token": "my-own-device-token", "platform": "android"})
    f = user.upload("mine.md", b"my note").json()
    for method, path in (("GET", f"/v1/reminders/{mine['id']}"), ("PATCH", f"/v1/reminders/{mine['id']}"),
                         ("DELETE", f"/v1/reminders/{mine['id']}"), ("DELETE", "/v1/devices/my-own-device-token")):
        assert other_user.http.request(method, path, json={} if method == "PATCH" else None).status_code == 404
    assert other_user.http.get("/v1/reminders").json() == []
    assert other_user.http.get("/v1/devices").json() == []
    assert other_user.http.get("/v1/notifications").json() == []
    r = other_user.http.post("/v1/reminders", json={"title": "x", "due_at": soon(60), "file_id": f["id"]})
    assert r.status_code == 404  # a reminder cannot be pinned to someone else's file
