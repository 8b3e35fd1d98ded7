"""Per-user storage and file-count limits (QUOTA_BYTES, QUOTA_FILES; 0: none), one check for every way
in: the API's uploads and captures, the e-mail attachments the extract stage stores, a fetched page's
bytes and an import's files. Usage counts every file the user holds, attachments included; the check
runs under a per-user transaction lock, so two uploads at once cannot both squeeze under a limit."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OverQuota(Exception):
    status: int  # 413 for storage, 422 for the number of files
    reason: str


def usage(conn, user: str) -> dict:
    row = conn.execute("SELECT coalesce(sum(size), 0)::bigint AS bytes, count(*) AS files FROM files"
                       " WHERE user_id = %s", (user,)).fetchone()
    return {"bytes": row["bytes"], "files": row["files"]}


def check(conn, user: str, adding: int, quota_bytes: int, quota_files: int, files: int = 1) -> None:
    """Raise OverQuota if `adding` more bytes in `files` more files would pass a limit; hold the user's lock
    until the caller's transaction ends (its inserts count for the next check)."""
    if not (quota_bytes or quota_files):
        return
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('quota:' || %s))", (user,))
    used = usage(conn, user)
    if quota_bytes and used["bytes"] + adding > quota_bytes:
        raise OverQuota(413, f"storage quota: {used['bytes']} of {quota_bytes} bytes used (QUOTA_BYTES); "
                             f"this file's {adding} bytes do not fit")
    if quota_files and used["files"] + files > quota_files:
        raise OverQuota(422, f"file quota: {used['files']} of {quota_files} files (QUOTA_FILES)"
                             + (f"; these {files} files do not fit" if files > 1 else ""))
