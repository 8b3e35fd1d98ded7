"""Office documents the tests make: a DOCX written part by part (python-docx makes no text boxes, notes or
Strict OOXML), an ODT through odfpy, and HTML with hidden parts. Each holds words only one part holds."""
from __future__ import annotations

import io
import zipfile

TRANSITIONAL = ("http://schemas.openxmlformats.org/wordprocessingml/2006/main",
                "http://schemas.openxmlformats.org/officeDocument/2006/relationships")
STRICT = ("http://purl.oclc.org/ooxml/wordprocessingml/main", "http://purl.oclc.org/ooxml/officeDocument/relationships")
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
WPS = "http://schemas.microsoft.com/office/word/2010/wordprocessingShape"

# What each part of the made DOCX holds.
DOCX_PARTS = {"body": "The committee met in the boathouse.", "box": "Sidebar: the heron nests by the weir.",
              "footnote": "Footnote: minutes taken by Philippa Quarrington.",
              "endnote": "Endnote: the budget spreadsheet lives on the shared drive.",
              "comment": "Comment: check the kingfisher survey dates.", "header": "Riverside Conservation Trust",
              "table": "Otter holts counted"}


def _p(w: str, text: str) -> str:
    return f'<w:p xmlns:w="{w}"><w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def docx(parts: dict[str, str] = DOCX_PARTS, strict: bool = False) -> bytes:
    """A Word document with a text box (drawn in mc:AlternateContent, its fallback a copy of it), a table, a
    footnote, an endnote, a comment and a header; Strict OOXML's namespaces when strict."""
    w, r = STRICT if strict else TRANSITIONAL
    rel = r if strict else "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    box = (f'<w:r><mc:AlternateContent xmlns:mc="{MC}"><mc:Choice Requires="wps"><w:drawing><wps:wsp xmlns:wps="{WPS}">'
           f'<wps:txbx><w:txbxContent>{_p(w, parts["box"])}</w:txbxContent></wps:txbx></wps:wsp></w:drawing>'
           f'</mc:Choice><mc:Fallback><w:pict><w:txbxContent>{_p(w, parts["box"])}</w:txbxContent></w:pict>'
           f'</mc:Fallback></mc:AlternateContent></w:r>')
    body = (f'<w:p><w:r><w:t>{parts["body"]}</w:t></w:r><w:commentRangeStart w:id="0"/>'
            f'<w:r><w:footnoteReference w:id="1"/></w:r><w:r><w:endnoteReference w:id="1"/></w:r>'
            f'<w:commentRangeEnd w:id="0"/><w:r><w:commentReference w:id="0"/></w:r></w:p>'
            f'<w:p>{box}</w:p>'
            f'<w:tbl><w:tr><w:tc>{_p(w, parts["table"])}</w:tc><w:tc>{_p(w, "14")}</w:tc></w:tr></w:tbl>'
            f'<w:sectPr><w:headerReference w:type="default" r:id="rIdH"/></w:sectPr>')
    files = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'wordprocessingml.document.main+xml"/></Types>',
        "_rels/.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="word/document.xml"/></Relationships>',
        "word/_rels/document.xml.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        f'relationships"><Relationship Id="rIdF" Type="{rel}/footnotes" Target="footnotes.xml"/>'
        f'<Relationship Id="rIdE" Type="{rel}/endnotes" Target="endnotes.xml"/>'
        f'<Relationship Id="rIdC" Type="{rel}/comments" Target="comments.xml"/>'
        f'<Relationship Id="rIdH" Type="{rel}/header" Target="header1.xml"/></Relationships>',
        "word/document.xml": f'<w:document xmlns:w="{w}" xmlns:r="{r}"><w:body>{body}</w:body></w:document>',
        "word/footnotes.xml": f'<w:footnotes xmlns:w="{w}"><w:footnote w:id="1">{_p(w, parts["footnote"])}'
                              '</w:footnote></w:footnotes>',
        "word/endnotes.xml": f'<w:endnotes xmlns:w="{w}"><w:endnote w:id="1">{_p(w, parts["endnote"])}'
                             '</w:endnote></w:endnotes>',
        "word/comments.xml": f'<w:comments xmlns:w="{w}"><w:comment w:id="0" w:author="Ada">{_p(w, parts["comment"])}'
                             '</w:comment></w:comments>',
        "word/header1.xml": f'<w:hdr xmlns:w="{w}">{_p(w, parts["header"])}</w:hdr>',
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, xml in files.items():
            z.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + xml)
    return out.getvalue()


ODT_PARTS = {"heading": "Allotment society", "body": "Plot 7 grows purple sprouting broccoli.",
             "table": "Rhubarb crowns divided", "note": "Note: the water butts are shared with plot 8.",
             "list": "Order seed potatoes"}


def odt(parts: dict[str, str] = ODT_PARTS) -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, List, ListItem, Note, NoteBody, NoteCitation, P

    doc = OpenDocumentText()
    doc.text.addElement(H(outlinelevel=1, text=parts["heading"]))
    paragraph = P(text=parts["body"])
    note = Note(noteclass="footnote", id="ftn1")
    note.addElement(NoteCitation(text="1"))
    body = NoteBody()
    body.addElement(P(text=parts["note"]))
    note.addElement(body)
    paragraph.addElement(note)
    doc.text.addElement(paragraph)
    table = Table(name="Jobs")
    table.addElement(TableColumn())
    row = TableRow()
    cell = TableCell()
    cell.addElement(P(text=parts["table"]))
    row.addElement(cell)
    table.addElement(row)
    doc.text.addElement(table)
    items = List()
    item = ListItem()
    item.addElement(P(text=parts["list"]))
    items.addElement(item)
    doc.text.addElement(items)
    out = io.BytesIO()
    doc.write(out)
    return out.getvalue()


HTML_VISIBLE = "Opening hours of the repair café"
HTML_HIDDEN = ["cormorant", "ptarmigan", "wolverine", "axolotl"]  # one word for each way to hide
HTML_PRICE = "$90.74"


def html() -> bytes:
    return (f'<html><head><title>t</title><style>.x {{}}</style></head><body><h1>{HTML_VISIBLE}</h1>'
            f'<div style="display: none">{HTML_HIDDEN[0]}</div><p hidden>{HTML_HIDDEN[1]}</p>'
            f'<span aria-hidden="true">{HTML_HIDDEN[2]}</span><i style="visibility:hidden">{HTML_HIDDEN[3]}</i>'
            f'<p>Soldering iron: <span>$<!-- -->90.<!-- -->74</span> a day</p></body></html>').encode()
