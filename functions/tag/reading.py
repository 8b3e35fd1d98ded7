"""How the tag stage reads a text, so that its tags are what a person would write.

Markdown's markup (a heading's `#`, emphasis, bullets, task boxes, a link's target, code ticks) is read
away before spaCy sees the text. A blank line starts a sentence, and so does a line break before a word
that is not in lower case or after a figure: a whiteboard's or a receipt's lines are separate items,
while prose wrapped across lines goes on in lower case. Prose wrapped at 40, 60 and 80 columns keeps 92,
97 and 99% of the tags of the unwrapped text so (96, 97 and 99% if no line break ends a sentence; 81, 89
and 93% if every one does). A name is cut where a mark or a link stands apart from the words; a date or a
sum keeps its words ("every 5 days", not "day": its number is the point); a phrase that is a quantity
("5 days", "4,000 euros") is no phrase.
"""
from __future__ import annotations

import re

from markdown_it import MarkdownIt

from shared.models import SpacyPipeline

KINDS = {"PERSON": "person", "ORG": "organization", "GPE": "place", "LOC": "place", "FAC": "place",
         "DATE": "date", "MONEY": "money", "EVENT": "event", "PRODUCT": "product", "WORK_OF_ART": "work",
         "NORP": "group"}
LITERAL = {"date", "money"}  # kept word for word, numbers included
NUMERIC = {"DATE", "TIME", "MONEY", "QUANTITY", "PERCENT", "CARDINAL", "ORDINAL"}
EDGE_POS = {"DET", "PRON", "PUNCT", "ADP", "CCONJ", "PART", "NUM", "SYM"}
MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
HASHTAG = re.compile(r"(?<!\S)#(?=[^\W\d_])")  # a note app's `#books` is the word books (spaCy took `#` for £)
UNITS = {"day", "week", "month", "year", "hour", "minute", "second", "time"}  # alone, a measure names no topic
MARKS = set("#*_`~|<>[]{}")  # markup's characters: a token holding one is no word (`li>`, `**Budget`)
BARE = re.compile(r"[\d\s.,]+")  # a number, or numbers: a year at most is a tag


def plain(text: str) -> str:
    """The words of a Markdown (or plain) text, one block a paragraph, heading, list item or table cell."""
    blocks = []
    for token in MARKDOWN.parse(text):
        if token.type == "inline":  # text, code, an image's alt text; a link's target, inline HTML, an
            words, skip = [], False  # autolink (its text is its target) and struck-out text go
            for c in token.children:
                if c.type in ("link_open", "link_close", "s_open", "s_close"):
                    skip = c.type == "s_open" or c.type == "link_open" and c.markup == "autolink"
                elif c.type in ("text", "code_inline", "image") and not skip:
                    words.append(HASHTAG.sub("", c.content))
                elif c.type in ("softbreak", "hardbreak"):
                    words.append("\n")
            blocks.append("".join(words))
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content)
    return "\n\n".join(blocks)


def line_breaks(doc):
    """The pipeline's step before the parser: a blank line starts a sentence, and so does a line break
    before a word not in lower case or after a figure (a receipt's price)."""
    for before, token in zip(doc, doc[1:], strict=False):
        if before.is_space and "\n" in before.text and (
                before.text.count("\n") > 1 or not token.is_lower or before.i and doc[before.i - 1].like_num):
            token.is_sent_start = True
    return doc


class Pipeline(SpacyPipeline):
    """The spaCy pipeline with line_breaks before its parser (which keeps sentence starts set before it)."""

    def _load(self):
        from spacy.language import Language

        nlp = super()._load()
        if not Language.has_factory("line_breaks"):
            Language.component("line_breaks", func=line_breaks)
        nlp.add_pipe("line_breaks", before="parser")
        return nlp


def apart(t) -> bool:
    """A link, markup, or a mark that is not inside a word (`Packing: adapter`, `[x] Deep Work`, `li>`)."""
    glued = not t.whitespace_ and t.i and not t.doc[t.i - 1].whitespace_
    return t.like_url or t.like_email or not MARKS.isdisjoint(t.text) or (
        not glued and not t.is_space and not any(c.isalnum() for c in t.text))


def normalise(span, kind: str = "phrase") -> tuple[str, str]:
    """(name, label): `The new Marketing campaigns` -> (`new marketing campaign`, `new Marketing campaigns`):
    lemmas, lower case, no edge words, one space between words; a mark or a link cuts it, and the part with
    its head stays. A name keeps its numbers (`Apollo 11`); a date or a sum keeps its words as written
    (`every 5 days`, `$4,000`) and loses only its articles and punctuation."""
    def edge(t):
        if t.is_space or t.is_punct:
            return True
        if kind in LITERAL:
            return "Art" in t.morph.get("PronType")
        return apart(t) or t.pos_ in EDGE_POS and (kind == "phrase" or t.pos_ != "NUM") or t.is_stop

    a, b, doc = span.start, span.end, span.doc
    if kind == "money":  # spaCy's sum is often the figure alone: `$` `4,000`
        a -= a > 0 and doc[a - 1].is_currency
        b += b < len(doc) and doc[b].is_currency
    elif kind != "date":
        cuts = [t.i for t in span if apart(t)]
        parts = list(zip([a] + [i + 1 for i in cuts], cuts + [b], strict=True))
        a, b = next(((x, y) for x, y in parts if x <= span.root.i < y), max(parts, key=lambda p: p[1] - p[0]))
    while a < b and edge(doc[a]):
        a += 1
    while b > a and edge(doc[b - 1]):
        b -= 1
    words = doc[a:b]
    label = " ".join(words.text.split())
    if kind in LITERAL:
        return label.lower(), label
    return " ".join("".join((t.text if t.pos_ == "PROPN" else t.lemma_).lower() + t.whitespace_
                            for t in words).split()), label


def readable(kind: str, name: str) -> bool:
    """A word in it, or a date or a sum in figures (`12/03/2026`, `$4,000`), never a bare number (a card's
    last digits `4471`, a postcode) but a year."""
    if any(c.isalpha() for c in name):
        return kind != "phrase" or len(name) > 2 and name not in UNITS
    if BARE.fullmatch(name):
        return kind == "date" and len(name) == 4 and name.startswith(("19", "20"))
    return kind in LITERAL and name != ""


def phrase(p) -> str | None:
    """The name of a TextRank phrase: its first mention that is no quantity ("5 days", "4,000 euros": a
    number counts the word, and an entity holds it when it is a date or a sum)."""
    for chunk in p.chunks:
        name = normalise(chunk)[0]
        counted = chunk.root.ent_type_ in NUMERIC or " " not in name and any(  # not a receipt's `lemons 1.19`
            c.dep_ == "nummod" and c.i < chunk.root.i for c in chunk.root.children)
        if not counted and readable("phrase", name):
            return name
    return None
