"""Web capture (issue 22): a shared link becomes a file whose text is the page's article, not its navigation,
cookie banner or comments; a PDF behind a URL is read as an uploaded PDF; and the guard refuses every address
that is not public (here: every loopback address but the test server's 127.0.0.1, which the test stack's
FETCH_ALLOW_NETWORKS lists) without connecting to it, through redirects too, with the reason as the file's status.
Pages are served on loopback by this module; nothing else is ever a target."""
from __future__ import annotations

import io
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from fpdf import FPDF

from functions.fetch import guard
from functions.fetch.main import download
from shared.errors import Rejected

from conftest import in_process

ARTICLE = (Path(__file__).parent / "pages" / "article.html").read_bytes()


def paper() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.multi_cell(0, 10, "Field report: the river otters returned to the northern bank in October.")
    return bytes(pdf.output())


class Trap:
    """A listener on a loopback address the guard must refuse: it records any connection made to it."""

    def __init__(self, host: str):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen()
        self.sock.settimeout(0)
        self.host, self.port = host, self.sock.getsockname()[1]

    def connections(self) -> int:
        n = 0
        while True:
            try:
                self.sock.accept()[0].close()
                n += 1
            except BlockingIOError:
                return n


@pytest.fixture(scope="module")
def trap():
    t = Trap("127.0.0.2")
    yield t
    t.sock.close()


@pytest.fixture(scope="module")
def pages(trap):
    pdf = paper()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            routes = {
                "/article": (200, "text/html; charset=utf-8", ARTICLE),
                "/paper": (200, "application/pdf", pdf),
                "/gone": (404, "text/html", b"<h1>Not found</h1>"),
                "/busy": (503, "text/plain", b"try later"),
                "/big": (200, "text/html", b"<p>" + b"x" * (2 * 1024 * 1024) + b"</p>"),
            }
            if self.path == "/to-private":
                return self.send(302, "text/plain", b"", Location=f"http://{trap.host}:{trap.port}/")
            if self.path == "/to-file":
                return self.send(302, "text/plain", b"", Location="file:///etc/passwd")
            if self.path.startswith("/loop"):
                return self.send(302, "text/plain", b"", Location=f"/loop{len(self.path)}")
            if self.path == "/endless":  # no Content-Length: only counting the bytes stops it
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                try:
                    for _ in range(64):
                        self.wfile.write(b"<p>" + b"y" * 64 * 1024 + b"</p>")
                except OSError:
                    pass
                return
            if self.path == "/slow":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                try:
                    for _ in range(30):
                        self.wfile.write(b"<p>drip</p>")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    pass
                return
            self.send(*routes.get(self.path, (404, "text/plain", b"no such page")))

        def send(self, code, content_type, body, **headers):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


CFG = SimpleNamespace(fetch_timeout_seconds=1.5, fetch_max_redirects=3, fetch_max_bytes=1024 * 1024,
                      fetch_public=False)  # as the test stack: no name is resolved, nothing public reached
ALLOW = guard.networks("127.0.0.1/32")


def test_the_guard_refuses_every_address_that_is_not_public():
    public = guard.refusal
    for address, why in [("127.0.0.2", "loopback"), ("10.1.2.3", "private"), ("192.168.0.1", "private"),
                         ("169.254.169.254", "metadata"), ("fe80::1", "link-local"), ("::1", "loopback"),
                         ("::ffff:127.0.0.2", "loopback"), ("224.0.0.1", "multicast"), ("100.64.0.1", "not a public"),
                         ("0.0.0.0", "unspecified"), ("64:ff9b::a00:1", "private")]:
        assert why in (public(guard.ipaddress.ip_address(address), ALLOW) or ""), address
    assert public(guard.ipaddress.ip_address("127.0.0.1"), ALLOW) is None  # listed
    assert public(guard.ipaddress.ip_address("93.184.215.14"), ()) is None
    assert "FETCH_PUBLIC" in public(guard.ipaddress.ip_address("93.184.215.14"), (), public=False)


def test_download_reads_a_page_and_refuses_without_connecting(pages, trap):
    page = download(f"{pages}/article", CFG, ALLOW)
    assert page.media_type == "text/html" and b"sourdough" in page.data
    refusals = {
        f"http://{trap.host}:{trap.port}/": "127.0.0.2 is a loopback address",
        f"{pages}/to-private": "127.0.0.2 is a loopback address",
        f"http://[::1]:{trap.port}/": "::1 is a loopback address",
        "http://169.254.169.254/latest/meta-data/": "cloud metadata",
        f"{pages}/to-file": "only http and https",
        f"{pages}/loop": "redirects more than 3 times",
        f"{pages}/big": "over the limit of 1048576 bytes",
        f"{pages}/endless": "over the limit of 1048576 bytes",
        f"{pages}/slow": "took over 1.5 s",
        f"{pages}/gone": "answered 404",
        "http://mindspace-test.invalid/": "names are not resolved here",
        "http://93.184.215.14/": "public addresses are not fetched here",
    }
    for url, reason in refusals.items():
        with pytest.raises(Rejected, match=reason.replace("(", r"\(").replace(".", r"\.")):
            download(url, CFG, ALLOW)
    assert trap.connections() == 0, "the guard connected to a refused address"
    with pytest.raises(RuntimeError, match="503"):  # a server's bad moment is retried, not the page's answer
        download(f"{pages}/busy", CFG, ALLOW)


@pytest.mark.on_containers
def test_a_captured_page_is_searchable_by_its_article_not_its_navigation(user, pages):
    r = user.http.post("/v1/captures", json={"url": f"{pages}/article#comments"})
    assert r.status_code == 201, r.text
    link = r.json()
    assert link["category"] == "link" and link["source_url"] == f"{pages}/article"
    f = user.wait(link["id"], timeout=120)
    assert f["status"] == "ready", f
    assert f["filename"] == "How to keep a sourdough starter alive" and f["media_type"] == "text/html"
    assert f["extraction"]["author"] == "Ana Lindqvist" and f["extraction"]["sitename"] == "The Crumb Journal"
    hits = user.search("how often do I feed the sourdough starter", mode="hybrid")
    assert hits and hits[0]["file_id"] == link["id"]
    for chrome in ("flour subscriptions", "accept all cookies", "Bubbles", "birthdays", "newsletter signup"):
        assert not [h for h in user.search(chrome, mode="text") if h["file_id"] == link["id"]], chrome
    again = user.http.post("/v1/captures", json={"text": f"look at this! {pages}/article."})
    assert again.status_code == 200 and again.json()["duplicate"] and again.json()["id"] == link["id"]


def test_a_url_serving_a_pdf_is_read_as_an_uploaded_pdf(user, pages):
    f = user.wait(user.http.post("/v1/captures", json={"url": f"{pages}/paper"}).json()["id"], timeout=120)
    assert f["status"] == "ready" and f["media_type"] == "application/pdf", f
    assert "ocr" in f["stages"] and f["extraction"]["method"] in ("text-layer", "ocr"), f
    assert user.search("otters northern bank")[0]["file_id"] == f["id"]


def test_refused_addresses_end_the_file_with_the_reason_and_connect_nowhere(user, other_user, pages, trap, sql):
    cases = {f"http://{trap.host}:{trap.port}/x": "127.0.0.2 is a loopback address",
             f"{pages}/to-private": "127.0.0.2 is a loopback address",
             "http://169.254.169.254/computeMetadata/v1/": "cloud metadata",
             f"{pages}/gone": "answered 404"}
    ids = {user.http.post("/v1/captures", json={"url": url}).json()["id"]: why for url, why in cases.items()}
    for file_id, why in ids.items():
        f = user.wait(file_id, timeout=120)
        assert f["status"] == "failed" and why in f["status_reason"], f
        assert other_user.http.get(f"/v1/files/{file_id}").status_code == 404
    assert trap.connections() == 0
    deadline = time.monotonic() + 30  # the broker hands the refused event to the sink after the file ended
    while (dead := sql("SELECT count(*) AS n FROM dead_letters WHERE file_id = ANY(%s)", list(ids))[0]["n"]) < len(ids):
        assert time.monotonic() < deadline, f"{dead} of {len(ids)} refusals reached the dead-letter sink"
        time.sleep(0.2)
    assert dead == len(ids)  # a poison event ends in the dead-letter sink, never in silence


@pytest.mark.parametrize("body, why", [
    ({"url": "file:///etc/passwd"}, "only http and https"),
    ({"url": "ftp://127.0.0.1/a"}, "only http and https"),
    ({"url": "javascript:alert(1)"}, "only http and https"),
    ({"url": "http://user:secret@127.0.0.1/"}, "credentials"),
    ({"url": "http://127.0.0.1:99999/"}, "not a URL"),
    ({"url": "http://127.0.0.1/" + "a" * 3000}, "longer than 2048"),
    ({"text": "no link in here"}, "holds no http"),
    ({"url": "http://127.0.0.1/", "text": "http://127.0.0.1/"}, "either"),
    ({}, "either"),
])
def test_captures_refuse_what_is_no_web_address(user, body, why):
    r = user.http.post("/v1/captures", json=body)
    assert r.status_code == 422 and why in r.text, r.text


def test_captures_count_against_the_quota(stack, pages):
    who = {"Authorization": f"Bearer dev:capture-quota-{uuid.uuid4().hex[:6]}"}
    with in_process(stack, quota_files=1) as client:
        assert client.post("/v1/captures", headers=who, json={"url": f"{pages}/article"}).status_code == 201
        r = client.post("/v1/captures", headers=who, json={"url": f"{pages}/paper"})
        assert r.status_code == 422 and "1 of 1 files (QUOTA_FILES)" in r.json()["detail"]


def test_the_fetched_bytes_meet_the_storage_quota(stack, pages):
    """The stage counts the page's bytes where the address's counted: past QUOTA_BYTES the file fails."""
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    from events.catalogue import Category, FileUploaded
    from functions.fetch.main import Fetch
    from shared.blobs import LocalBlobStore, file_key
    from shared.config import Settings
    from shared.stage import Context

    user, file_id, url = f"fetch-quota-{uuid.uuid4().hex[:6]}", uuid.uuid4(), f"{pages}/article"
    cfg = Settings(database_url=stack.database_url, data_dir=stack.data_dir, quota_bytes=1000,
                   fetch_allow_networks="127.0.0.1/32")
    blobs = LocalBlobStore(cfg.blob_dir)
    uri = blobs.put(file_key(user, file_id, "original"), url.encode(), "text/uri-list")
    with ConnectionPool(stack.database_url, kwargs={"row_factory": dict_row, "autocommit": True}, open=True) as pool:
        with pool.connection() as c:
            c.execute("INSERT INTO users (id) VALUES (%s)", (user,))
            c.execute("""INSERT INTO files (id, user_id, filename, media_type, category, size, sha256, blob_uri,
                         source_url) VALUES (%s, %s, %s, 'text/uri-list', 'link', %s, %s, %s, %s)""",
                      (file_id, user, url, len(url), "0" * 64, uri, url))
            file = c.execute("SELECT * FROM files WHERE id = %s", (file_id,)).fetchone()
        stage = Fetch()
        stage.start(cfg)
        ctx = Context(cfg, blobs, pool, None, file=file)
        event = FileUploaded(file_id=file_id, user_id=user, blob_uri=uri, filename=url, media_type="text/uri-list",
                             category=Category.link, size=len(url), sha256="0" * 64)
        with pytest.raises(Rejected, match="storage quota"), ctx.transaction():
            stage.handle(event, ctx)
        with pool.connection() as c:
            c.execute("DELETE FROM users WHERE id = %s", (user,))
    assert io.BytesIO(blobs.get(uri)).read() == url.encode()  # the address is still the original
