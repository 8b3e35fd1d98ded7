"""Every stage's preconditions that retrying cannot change: each ends as a no-op (2xx, with what the
stage made of it) or a poison event (422, recorded with a reason), never a 500 retried six times.
The events are posted to each function as the broker would, about files set up here row by row."""
from __future__ import annotations

import json
import uuid

import hostile
import httpx
import pytest

from events import wire
from events.catalogue import (
    ClustersRefresh,
    FileDeleted,
    FileReady,
    NotificationKind,
    NotificationRequested,
    ScheduledTask,
    Task,
    TextEmbedded,
    TextExtracted,
)
from shared.blobs import LocalBlobStore, file_key

TEXTS = {
    "whitespace": " \n\t \u00a0 \n",
    "no language spaCy reads": "我们明天在花园里种番茄。 🍅🌱🌧️ ᚠᚢᚦᚨᚱᚲ ∮ E⋅da = Q",
    "one enormous word": "x" * 20_000,
    "dates that are no dates": "Due 31 February at 25:99, on 9999-99-99, then Friday the 99th of Smarch, "
                               "year 99999, at 13pm tomorrow-ish. 9999-12-31 at 23:59; 10000-01-01 at 99pm.",
}


class Files:
    """Files of one user written as rows (no stage has touched them), with texts in the stack's blobs."""

    def __init__(self, stack, sql, user: str):
        self.stack, self.sql, self.user = stack, sql, user
        self.blobs = LocalBlobStore(stack.data_dir / "blobs")
        sql("INSERT INTO users (id) VALUES (%s) ON CONFLICT DO NOTHING", user)

    def new(self, name: str = "note.txt") -> uuid.UUID:
        file_id = uuid.uuid4()
        self.sql("""INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri)
                    VALUES (%s, %s, %s, 'text/plain', 'text', 1, %s, 'file:///nowhere')""",
                 file_id, self.user, name, uuid.uuid4().hex * 2)
        return file_id

    def text(self, file_id: uuid.UUID, text: str | None, raw: bytes | None = None) -> TextExtracted:
        """text.extracted for a stored text (None: a text that was never stored; raw: these bytes as it)."""
        key = file_key(self.user, file_id, "text.json")
        body = raw if raw is not None else json.dumps(
            {"text": text, "segments": [{"start": 0, "end": len(text or ""), "locator": {}}]}).encode()
        uri = self.blobs.put(key, body) if text is not None or raw is not None else f"{self.blobs.root.as_uri()}/{key}"
        return TextExtracted(file_id=file_id, user_id=self.user, text_uri=uri, method="text", chars=len(text or ""))

    def post(self, stage: str, data) -> httpx.Response:
        headers, body = wire.binary(wire.make(data, "test"))
        return httpx.post(f"http://127.0.0.1:{self.stack.function_ports[stage]}/", headers=headers, content=body,
                          timeout=120)


@pytest.fixture
def files(stack, sql, user):
    return Files(stack, sql, user.name)


@pytest.mark.parametrize("stage", ["embed", "tag", "suggest"])
@pytest.mark.parametrize("case", TEXTS)
def test_texts_no_stage_can_use_are_done_with_nothing_made(files, sql, stage, case):
    file_id = files.new()
    r = files.post(stage, files.text(file_id, TEXTS[case]))
    assert r.status_code in (200, 202), (stage, case, r.status_code, r.text)
    assert sql("SELECT status FROM file_stages WHERE file_id = %s AND stage = %s", file_id, stage) == \
        [{"status": "done"}]


@pytest.mark.parametrize("stage", ["embed", "tag", "suggest"])
def test_a_text_that_is_gone_is_poison(files, sql, stage):
    file_id = files.new()
    r = files.post(stage, files.text(file_id, None))
    assert r.status_code == 422 and "gone" in r.json()["detail"], r.text
    assert sql("SELECT status FROM files WHERE id = %s", file_id) == [{"status": "failed"}]


@pytest.mark.parametrize("stage", ["embed", "tag", "suggest"])
def test_a_stored_text_that_is_not_a_text_document_is_poison(files, stage):
    file_id = files.new()
    r = files.post(stage, files.text(file_id, None, raw=b"\x00 not the JSON an extractor writes"))
    assert r.status_code == 422, r.text


def test_a_recording_longer_than_the_limit_is_refused_before_decoding(stack, user):
    """A FLAC whose header claims 4 hours (its data: one second): refused from the header alone."""
    f = user.wait(user.upload("forever.flac", hostile.flac_claiming(4.0)).json()["id"])
    assert f["status"] == "failed" and "MAX_RECORDING_SECONDS" in f["status_reason"], f


def test_cluster_preconditions_are_no_ops(files, sql):
    since = sql("SELECT now() AS t")[0]["t"]
    one = files.new()
    assert files.post("cluster", ClustersRefresh(user_id=files.user)).status_code in (200, 202)  # one file at most
    assert files.post("cluster", ClustersRefresh(user_id=f"nobody-{uuid.uuid4()}")).status_code in (200, 202)
    r = files.post("cluster", TextEmbedded(file_id=one, user_id=files.user, chunks=0, model="m"))  # no chunks
    assert r.status_code == 200 and wire.decode(r.headers, r.content).data["cluster_id"] is None, r.text
    assert sql("SELECT reason FROM event_failures WHERE consumer = 'cluster' AND created_at > %s", since) == []


def test_a_notification_whose_reminder_or_user_is_gone_is_a_no_op(files, sql):
    since = sql("SELECT now() AS t")[0]["t"]
    gone_reminder = NotificationRequested(user_id=files.user, key=f"reminder:{uuid.uuid4()}",
                                          kind=NotificationKind.reminder, title="deleted meanwhile",
                                          reminder_id=2**62)
    gone_user = gone_reminder.model_copy(update={"user_id": f"nobody-{uuid.uuid4()}", "reminder_id": None,
                                                 "key": f"reminder:{uuid.uuid4()}"})
    for event in (gone_reminder, gone_user):
        assert files.post("notify", event).status_code in (200, 202)
        assert sql("SELECT 1 FROM notifications WHERE key = %s", event.key) == []
    assert sql("SELECT reason FROM event_failures WHERE consumer = 'notify' AND created_at > %s", since) == []


@pytest.mark.parametrize("bucket", ["no-such-bucket-here", "Not A Bucket!", "x" * 300])
def test_a_backup_to_a_bucket_it_cannot_use_ends_failed_with_the_reason(files, user, sql, bucket):
    since = sql("SELECT now() AS t")[0]["t"]
    file_id = user.upload("kept.txt", f"a note to keep in {bucket}".encode()).json()["id"]
    assert user.wait(file_id)["status"] == "ready"
    sql("INSERT INTO user_settings (user_id, backup_bucket) VALUES (%s, %s) ON CONFLICT (user_id) DO UPDATE"
        " SET backup_bucket = excluded.backup_bucket", files.user, bucket)  # the API may refuse such a name
    r = files.post("backup", FileReady(file_id=file_id, user_id=files.user, filename="note.txt"))
    assert r.status_code == 202, r.text
    backup = sql("SELECT status, reason FROM backups WHERE file_id = %s", file_id)
    assert backup[0]["status"] == "failed" and bucket[:20] in backup[0]["reason"], backup
    gone = FileDeleted(file_id=uuid.uuid4(), user_id=files.user, backup_bucket=bucket)
    assert files.post("backup", gone).status_code in (200, 202, 422)
    assert [f for f in sql("SELECT http_status FROM event_failures WHERE consumer = 'backup' AND created_at > %s",
                           since) if f["http_status"] >= 500] == []


def test_refusals_of_remind_and_the_dead_letter_sink_are_poison(files):
    assert files.post("remind", ScheduledTask(task=Task.recluster)).status_code == 422
    r = httpx.post(f"http://127.0.0.1:{files.stack.function_ports['deadletter']}/", timeout=30,
                   headers={"ce-specversion": "1.0", "ce-type": "com.example.x", "ce-source": "/t",
                            "ce-id": str(uuid.uuid4()), "content-type": "application/json"}, content=b"{}")
    assert r.status_code == 422 and "knativeerrordest" in r.json()["detail"]


@pytest.mark.parametrize("stage", ["embed", "tag", "suggest"])
def test_an_event_pointing_at_another_files_text_is_poison(stack, sql, files, other_user, stage):
    theirs = Files(stack, sql, other_user.name)
    their_text = theirs.text(theirs.new(), "Another user's private note about their bank account.")
    file_id = files.new()
    forged = files.text(file_id, "").model_copy(update={"text_uri": their_text.text_uri})
    r = files.post(stage, forged)
    assert r.status_code == 422 and "outside file" in r.json()["detail"], r.text
    assert sql("SELECT count(*) AS n FROM chunks WHERE file_id = %s", file_id) == [{"n": 0}]
