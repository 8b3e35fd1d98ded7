"""Failures classified right: what retrying cannot change is a no-op or a poison event with a reason,
never a fault retried six times; outcomes (an unsupported upload, a file deleted while in flight) are
not dead letters, which hold only what a replay could fix."""
from __future__ import annotations

import io
import threading
import time
import zipfile

import psycopg
from psycopg.rows import dict_row

from shared import lifecycle


def dead_letters_of(sql, file_id: str) -> list[dict]:
    return sql("SELECT event_type, error_dest, error_code FROM dead_letters WHERE event->>'subject' = %s", file_id)


def test_refreshing_the_clusters_of_a_user_with_no_files_is_a_no_op(stack, user, sql):
    since = sql("SELECT now() AS t")[0]["t"]
    assert user.http.post("/v1/clusters/refresh").status_code == 202
    deadline = time.monotonic() + 30
    while not sql("SELECT 1 FROM consumed_events WHERE consumer = 'cluster' AND consumed_at > %s", since):
        assert time.monotonic() < deadline, "the refresh was never consumed"
        time.sleep(0.2)
    assert sql("SELECT reason FROM event_failures WHERE consumer = 'cluster' AND created_at > %s", since) == []


def test_an_unsupported_upload_is_an_outcome_not_a_dead_letter(user, sql):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "zipped")
    f = user.upload("holiday.zip", archive.getvalue()).json()
    assert user.wait(f["id"])["status"] == "unsupported"
    time.sleep(1)
    assert dead_letters_of(sql, f["id"]) == []


def test_a_file_deleted_while_in_flight_leaves_no_dead_letter(user, sql):
    ids = [user.upload(f"brief-{i}.txt", f"a short-lived note number {i} about kites".encode()).json()["id"]
           for i in range(4)]
    for file_id in ids:  # while extract, embed, tag, suggest or cluster may hold its events
        assert user.http.delete(f"/v1/files/{file_id}").status_code == 204
    time.sleep(6)
    assert [d for i in ids for d in dead_letters_of(sql, i)] == []


def test_a_delete_waits_for_a_stage_finishing_its_file_and_never_deadlocks(stack, user, sql):
    """The order a stage takes its rows in (the file's, then its stage record, then the file's again)
    against a delete of that file: before both took the file's row first, the delete answered 503
    (deadlock detected) about once in a few runs of the test above."""
    file_id = user.upload("kite.txt", b"a note about kites and their strings").json()["id"]
    user.wait(file_id)
    answers = []
    with psycopg.connect(stack.database_url, row_factory=dict_row) as stage:  # as shared/stage.py's ctx.db
        assert lifecycle.hold(stage, file_id)
        stage.execute("INSERT INTO tags (file_id, user_id, kind, name, label, score) "
                      "VALUES (%s, %s, 'phrase', 'kites', 'kites', 1)", (file_id, user.name))
        delete = threading.Thread(target=lambda: answers.append(user.http.delete(f"/v1/files/{file_id}")))
        delete.start()
        time.sleep(1.5)  # the delete now waits on the file's row; a deadlock would be found after 1 s
        assert not answers, "the delete did not wait for the stage's transaction"
        lifecycle.stage_done(stage, file_id, "tag", {}, [])
        stage.commit()
    delete.join(30)
    assert answers[0].status_code == 204, answers[0].text
    assert sql("SELECT 1 FROM files WHERE id = %s", file_id) == []
