"""What a person reads in a text-like file, in reading order, by media type: HTML's visible text (inscriptis);
DOCX through mammoth (text boxes, tables, footnotes, endnotes and comments, Strict OOXML too) with its headers
and footers; OpenDocument text through odfpy; legacy Word (.doc) through catdoc. Office files are zip
packages: a part that declares more than MAX_PART uncompressed is refused before a byte is inflated."""
from __future__ import annotations

import io
import re
import subprocess
import zipfile

import lxml.html
from bs4.dammit import UnicodeDammit
from inscriptis import Inscriptis
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig
from lxml import etree

from shared.errors import Rejected, Unsupported

TEXTNS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
OFFICENS = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
NOTES = {(TEXTNS, "note"), (OFFICENS, "annotation")}  # read after the body, not inside a sentence

HTML = "text/html"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
DOC = "application/msword"
MAX_PART = 64 * 1024 * 1024  # bytes of one package part once inflated: a 50 MB upload of text is far below
DOC_SECONDS = 60
# What no reader of the page sees: hidden by attribute, by ARIA, or by an inline style.
HIDDEN = ("//*[@hidden] | //*[@aria-hidden='true'] | //*[contains(translate(@style, ' ', ''), 'display:none')]"
          " | //*[contains(translate(@style, ' ', ''), 'visibility:hidden')] | //script | //style | //template"
          " | //noscript | //head")
# mammoth's links between a note and its reference ("↑", "[1]") and its comments' titles: marks, not words.
NOTE_LINKS = ("//a[starts-with(@href, '#footnote-') or starts-with(@href, '#endnote-')"
              " or starts-with(@href, '#comment-')] | //dt[starts-with(@id, 'comment-')]")
UTF8_HTML = lxml.html.HTMLParser(encoding="utf-8", no_network=True)
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def html_text(data: bytes | str, drop: str = HIDDEN) -> str:
    # The charset a BOM or <meta> declares, else the likeliest; handed to lxml as UTF-8.
    text = data if isinstance(data, str) else UnicodeDammit(data, is_html=True).unicode_markup
    try:
        tree = lxml.html.document_fromstring(text.encode("utf-8", errors="replace"), parser=UTF8_HTML)
    except (etree.ParserError, ValueError):  # nothing but whitespace or comments
        return ""
    for element in tree.xpath(drop):
        element.drop_tree()  # its tail (the text after it) stays
    # The strict profile adds no spaces around inline elements: "$<!-- -->90.<!-- -->74" stays "$90.74".
    return Inscriptis(tree, ParserConfig(css=CSS_PROFILES["strict"])).get_text()


def unreadable(kind: str, e: Exception) -> Rejected:
    """Bytes a reader cannot read are the file's fault, never retried (an entity bomb: expat's amplification limit)."""
    return Rejected(f"not a readable {kind} file: {type(e).__name__}: {str(e)[:200]}")


def package(data: bytes, kind: str) -> zipfile.ZipFile:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise unreadable(kind, e) from None
    big = next((i for i in z.infolist() if i.file_size > MAX_PART), None)
    if big:
        raise Rejected(f"the {kind} file's part {big.filename} declares {big.file_size / 2**20:.0f} MB uncompressed; "
                       f"parts over {MAX_PART // 2**20} MB are not read")
    return z


def docx_text(data: bytes) -> str:
    import mammoth

    z = package(data, "DOCX")
    try:
        html = mammoth.convert_to_html(io.BytesIO(data), style_map="comment-reference => sup").value
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever mammoth or expat met in these bytes, reading again meets it too
        raise unreadable("DOCX", e) from None
    headers, footers = docx_parts(z, "header"), docx_parts(z, "footer")
    return "\n".join(headers + [html_text(html, HIDDEN + " | " + NOTE_LINKS) if html else ""] + footers)


def docx_parts(z: zipfile.ZipFile, kind: str) -> list[str]:
    """The distinct texts of the package's headers or footers (a first-page, even and default one often repeat),
    read by local names: Strict OOXML names its elements in other namespaces."""
    texts = []
    for name in sorted(n for n in z.namelist() if re.fullmatch(rf"word/{kind}\d*\.xml", n)):
        try:
            root = etree.fromstring(z.read(name), SAFE_XML)
        except etree.XMLSyntaxError:
            continue  # a broken header costs the header, not the document
        lines = ["".join(t.text or "" for t in p.iter("{*}t")) for p in root.iter("{*}p")]
        text = "\n".join(line for line in lines if line.strip())
        if text and text not in texts:
            texts.append(text)
    return texts


def odt_text(data: bytes) -> str:
    """Headings and paragraphs in order (in tables and lists too), then the notes and comments."""
    from odf import opendocument

    package(data, "ODT")
    try:
        doc = opendocument.load(io.BytesIO(data))  # odfpy parses through defusedxml: no entity expansion
    except MemoryError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever odfpy or its parser met in these bytes, reading again meets it too
        raise unreadable("ODT", e) from None
    paragraphs, notes = [], []
    for element, in_note in paragraphs_of(doc.text):
        (notes if in_note else paragraphs).append(own_text(element))
    return "\n".join(paragraphs + notes)


def paragraphs_of(node, in_note: bool = False):
    for child in node.childNodes:
        if child.nodeType == child.ELEMENT_NODE:
            if child.qname in ((TEXTNS, "p"), (TEXTNS, "h")):
                yield child, in_note
            yield from paragraphs_of(child, in_note or child.qname in NOTES)


def own_text(node) -> str:
    """A paragraph's text without its notes' (read after the body) or their numbers."""
    out = []
    for child in node.childNodes:
        if child.nodeType == child.TEXT_NODE:
            out.append(child.data)
        elif child.qname in NOTES or child.qname[1] in ("p", "h"):
            continue
        elif child.qname == (TEXTNS, "s"):
            out.append(" " * int(child.attributes.get((TEXTNS, "c"), 1)))
        elif child.qname == (TEXTNS, "tab"):
            out.append("\t")
        elif child.qname == (TEXTNS, "line-break"):
            out.append("\n")
        else:
            out.append(own_text(child))
    return "".join(out)


def doc_text(data: bytes) -> str:
    """catdoc reads Word 97-2003 files (measured against antiword in the README)."""
    try:
        done = subprocess.run(["catdoc", "-w", "-d", "utf-8"], input=data, capture_output=True,  # nosec B607: Debian's, on PATH
                              timeout=DOC_SECONDS, check=False)
    except FileNotFoundError:
        raise Unsupported("no reader for Word 97-2003 files here: install Debian's catdoc") from None
    except subprocess.TimeoutExpired:
        raise Rejected(f"the Word file took more than {DOC_SECONDS} s to read") from None
    if done.returncode:
        raise Rejected(f"not a readable Word 97-2003 file: {done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout.decode("utf-8", errors="replace")
