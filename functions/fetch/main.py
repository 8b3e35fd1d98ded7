"""fetch: a captured link becomes a file. The page is downloaded through the guard (guard.py: public addresses
only, every redirect's too), capped in redirects, bytes and seconds; an article's readable text (trafilatura: the
main text without navigation, cookie banners or comments), title, author, date and site become its text, and the
HTML its original. A URL that serves a PDF or an image goes on as an uploaded one does (file.uploaded to ocr).
A refusal, a page that is gone or too big, ends the file with the reason; a server error or a timeout is retried.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import httpx

from events.catalogue import Category, FileUploaded, TextExtracted
from functions.fetch import guard
from shared import quota
from shared.blobs import file_key
from shared.errors import Rejected, Unsupported
from shared.media import sniff
from shared.stage import Context, Stage, serve
from shared.textdoc import TextDoc

URI_LIST = "text/uri-list"  # a link not fetched yet: its original is its address
USER_AGENT = "Mindspace/0.1 (a person's own notes; fetches a page they shared)"
RETRIED = {408, 425, 429, 500, 502, 503, 504}  # worth another try later; other errors are the page's answer


@dataclass
class Page:
    url: str  # where it was fetched from, after redirects
    media_type: str
    data: bytes


def download(url: str, cfg, allow) -> Page:
    deadline = time.monotonic() + cfg.fetch_timeout_seconds
    transport = guard.GuardedTransport(allow, cfg.fetch_public)
    try:
        with httpx.Client(transport=transport, follow_redirects=True, trust_env=False,
                          max_redirects=cfg.fetch_max_redirects, timeout=cfg.fetch_timeout_seconds,
                          headers={"User-Agent": USER_AGENT}) as http, http.stream("GET", url) as r:
            if r.status_code in RETRIED:
                raise RuntimeError(f"{r.url} answered {r.status_code}; trying again later")
            if r.status_code >= 400:
                raise Rejected(f"{r.url} answered {r.status_code} {r.reason_phrase}")
            if int(r.headers.get("content-length") or 0) > cfg.fetch_max_bytes:
                raise Rejected(f"the page is over the limit of {cfg.fetch_max_bytes} bytes (FETCH_MAX_BYTES)")
            data = bytearray()
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > cfg.fetch_max_bytes:
                    raise Rejected(f"the page is over the limit of {cfg.fetch_max_bytes} bytes (FETCH_MAX_BYTES)")
                if time.monotonic() > deadline:
                    raise Rejected(f"the page took over {cfg.fetch_timeout_seconds:g} s (FETCH_TIMEOUT_SECONDS)")
            if not data:
                raise Unsupported(f"{r.url} answered with nothing")
            media_type = r.headers.get("content-type", "").split(";")[0].strip().lower()
            return Page(str(r.url), media_type, bytes(data))
    except guard.Refused as e:
        raise Rejected(f"refused to fetch {url}: {e}") from None
    except httpx.TooManyRedirects:
        raise Rejected(f"{url} redirects more than {cfg.fetch_max_redirects} times (FETCH_MAX_REDIRECTS)") from None
    except httpx.UnsupportedProtocol as e:
        raise Rejected(f"only http and https pages are fetched: {e}") from None
    except (httpx.InvalidURL, httpx.RemoteProtocolError, httpx.DecodingError) as e:
        raise Rejected(f"{url} cannot be read: {e}") from None
    # Timeouts and refused connections are raised as they are: the broker retries them.


def article(page: Page) -> tuple[TextDoc, dict]:
    import trafilatura  # lazily: a cold start reads no more than it needs

    # No date guessed from a page's footer ("© 2026"): only one the page states.
    found = trafilatura.bare_extraction(page.data, url=page.url, with_metadata=True, include_comments=False,
                                        include_tables=True,
                                        date_extraction_params={"extensive_search": False, "original_date": True})
    if found is None or not (found.text or "").strip():
        raise Unsupported(f"{page.url} holds no readable text")
    meta = {k: v for k in ("title", "author", "date", "sitename") if (v := getattr(found, k, None))}
    doc = TextDoc()
    doc.add("\n".join(filter(None, [meta.get("title"), " · ".join(
        meta[k] for k in ("author", "sitename", "date") if k in meta)])), part="header")
    doc.add(found.text, part="article")
    return doc, meta


class Fetch(Stage):
    name = "fetch"
    consumes = (FileUploaded,)

    def start(self, cfg) -> None:
        self.allow = guard.networks(cfg.fetch_allow_networks)

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted | FileUploaded:
        if event.category != Category.link:
            raise Unsupported(f"fetch reads links, not {event.category} files")
        file = ctx.file
        if file["media_type"] == URI_LIST:
            page = download(file["source_url"], ctx.cfg, self.allow)
            media_type, category = sniff(page.data, page.url.rsplit("/", 1)[-1])
            media_type = "text/html" if page.media_type == "text/html" and category == Category.text else media_type
            try:  # the page's bytes count, where the link's address did before
                quota.check(ctx.db, event.user_id, len(page.data) - file["size"], ctx.cfg.quota_bytes, 0)
            except quota.OverQuota as e:
                raise Rejected(e.reason) from None
            uri = ctx.blobs.put(file_key(event.user_id, event.file_id, "original"), page.data, media_type)
            ctx.db.execute("UPDATE files SET media_type = %s, size = %s, blob_uri = %s WHERE id = %s",
                           (media_type, len(page.data), uri, event.file_id))
            ctx.detail.update(url=page.url, status="fetched", bytes=len(page.data))
        else:  # fetched before (a retried event, an import of an export): the stored page is read again
            page = Page(file["source_url"] or "", file["media_type"], ctx.blobs.get(file["blob_uri"]))
            media_type, category = sniff(page.data, page.url.rsplit("/", 1)[-1])
            uri = file["blob_uri"]
        ctx.detail["media_type"] = media_type
        if category in (Category.pdf, Category.image):  # read as an uploaded PDF or photo is
            return FileUploaded(file_id=event.file_id, user_id=event.user_id, blob_uri=uri, filename=event.filename,
                                media_type=media_type, category=category, size=len(page.data),
                                sha256=hashlib.sha256(page.data).hexdigest())
        if media_type == "text/html":
            doc, meta = article(page)
            ctx.detail.update(meta)
            if meta.get("title"):  # the page's title names the file, where the address did
                ctx.db.execute("UPDATE files SET filename = %s WHERE id = %s", (meta["title"][:1024], event.file_id))
        elif category == Category.text:
            doc = TextDoc()
            doc.add(page.data.decode("utf-8", errors="replace"))
        else:
            raise Unsupported(f"{page.url} serves {media_type}, which no stage reads")
        if not doc.segments:
            raise Unsupported(f"{page.url} holds no text")
        ctx.detail.update(method="web", chars=len(doc.text))
        return doc.save(ctx.blobs, event, "web")


handle = serve(Fetch())
