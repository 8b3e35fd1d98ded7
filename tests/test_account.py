"""A person's account (issue 22, part): storage and file quotas that every upload meets, usage shown,
and deleting the account with everything of it, leaving nothing behind and nobody else's data touched."""
from __future__ import annotations

import uuid
from email.message import EmailMessage

import psycopg
from psycopg.rows import dict_row

from shared import quota

from conftest import in_process


def auth(user: str) -> dict:
    return {"Authorization": f"Bearer dev:{user}"}


def test_quotas_refuse_what_does_not_fit_saying_usage_and_limit(stack):
    user = f"quota-{uuid.uuid4().hex[:6]}"
    with in_process(stack, quota_bytes=1000, quota_files=3) as client:
        assert client.post("/v1/files", headers=auth(user), files={"file": ("a.md", b"a" * 600)}).status_code == 201
        r = client.post("/v1/files", headers=auth(user), files={"file": ("b.md", b"b" * 600)})
        assert r.status_code == 413 and "600 of 1000 bytes used (QUOTA_BYTES)" in r.json()["detail"]
        for name in ("c.md", "d.md"):
            r = client.post("/v1/files", headers=auth(user), files={"file": (name, name.encode())})
            assert r.status_code == 201
        r = client.post("/v1/files", headers=auth(user), files={"file": ("e.md", b"e")})
        assert r.status_code == 422 and "3 of 3 files (QUOTA_FILES)" in r.json()["detail"]
        account = client.get("/v1/account", headers=auth(user)).json()
        assert account == {"user": user, "usage": {"bytes": 608, "files": 3}, "quota": {"bytes": 1000, "files": 3}}
    # The check itself, as the extract stage meets it for an e-mail's attachments.
    with psycopg.connect(stack.database_url, row_factory=dict_row) as conn:
        try:
            quota.check(conn, user, 10, 1000, 3)
        except quota.OverQuota as e:
            assert e.status == 422
        else:
            raise AssertionError("a fourth file passed a quota of three")
        quota.check(conn, user, 10**9, 0, 0)  # no limits: nothing is checked


def test_deleting_an_account_leaves_nothing_of_it(stack, user, other_user, sql):
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "Tiles", "a@example.org", "b@example.org"
    message["Date"] = "Tue, 01 Dec 2026 08:00:00 +0000"
    message.set_content("The grey slate tiles arrive on Monday.")
    message.add_attachment(b"Invoice for the tiles: 420 euros.", maintype="text", subtype="plain", filename="inv.txt")
    files = user.upload_all({"note": ("tiles.md", b"Grey slate tiles for the kitchen floor, due Monday at 9am."),
                             "mail": ("tiles.eml", message.as_bytes())})
    theirs = other_user.upload_all({"note": ("mine.md", b"The other person's note about slate tiles.")})["note"]
    assert user.http.put("/v1/settings", json={"timezone": "Europe/Berlin", "digest_at": "07:00"}).status_code == 200
    assert user.http.post("/v1/devices", json={"token": "t" * 40, "platform": "android"}).status_code == 201
    assert user.http.post("/v1/reminders", json={"title": "tiles", "due_at": "2099-01-01T09:00:00Z"}).status_code == 201
    assert user.http.get("/v1/digest").status_code == 200
    folder = stack.data_dir / "blobs" / "users" / user.name
    assert folder.exists()
    assert len(files["mail"]["attachments"]) == 1, files["mail"]
    r = user.http.delete("/v1/account")
    assert r.status_code == 200 and r.json()["files"] == 3 and "no backup bucket" in r.json()["kept"]
    assert not folder.exists()
    tables = [t["table_name"] for t in sql("SELECT table_name FROM information_schema.columns"
                                           " WHERE column_name = 'user_id' AND table_schema = 'public'")]
    left = {t: n for t in tables if (n := sql(f"SELECT count(*) AS n FROM {t} WHERE user_id = %s",  # nosec B608
                                               user.name)[0]["n"])}
    assert left == {}, left
    assert sql("""SELECT count(*) AS n FROM consumed_events WHERE jsonb_path_exists(reply,
                  '$[*].data.user_id ? (@ == $u)', jsonb_build_object('u', %s::text))""", user.name)[0]["n"] == 0
    assert sql("SELECT count(*) AS n FROM files WHERE id = ANY(%s)", [f["id"] for f in files.values()])[0]["n"] == 0
    assert user.http.get(f"/v1/files/{files['note']['id']}").status_code == 404
    assert other_user.file(theirs["id"])["status"] == "ready"  # nobody else's
    assert user.http.get("/v1/account").json()["usage"] == {"bytes": 0, "files": 0}
