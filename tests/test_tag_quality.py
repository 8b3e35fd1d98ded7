"""Tags a person would choose (issue 18), without the stack: the tag stage's own logic, with the real
spaCy model, over a labelled set of Markdown notes, whiteboards (OCR-like: one item a line) and receipts.
Junk tags (markup, line breaks, a lone stop word or unit word, a bare number) are counted per kind of
document and printed; the goal, asserted, is none."""
from __future__ import annotations

import json
import random
import re

import pytest
from corpora import SENTENCES, boilerplate, note
from spacy.lang.en.stop_words import STOP_WORDS

from functions.tag.main import Tag
from shared.blobs import LocalBlobStore
from shared.config import Settings
from shared.textdoc import TextDoc

# The notes a person writes in a Markdown app: headings, bullets, task boxes, emphasis, links, code.
MARKDOWN = [
    "# Note {n}\n\nBuy compost for the garden every {n} days.\n\n- water the [tomato plants](https://example.com/t)"
    "\n- check the `pH` of the soil\n* weed the *herb* beds",
    "## Weekly review\n\n1. **Budget**: cut travel expenses by ten percent\n2. Call _Anna Schmidt_ about the invoice"
    "\n\n> Remember: the accountant needs the tax receipts before the end of March.",
    "# Reading list\n\n- [ ] *The Pragmatic Programmer*\n- [x] [Deep Work](https://example.com/deep-work)\n"
    "- [ ] a history of the Silk Road, from Tom\n\n---\n\nTags: #books #reading",
    "### Trip to Lisbon\n\n| day | plan |\n|-----|------|\n| Friday | fly from Berlin at 9:10 |\n"
    "| Saturday | tram 28 and the *castle* |\n\nPacking: adapter, sunscreen, ~~umbrella~~ rain jacket.",
    "Standup notes\n=============\n\n* fixed the **memory leak** in the worker\n* `make test` passes again\n"
    "* next: review the pull request for the auth middleware <https://example.com/pr/42>",
]
WHITEBOARDS = [
    "LAUNCH PLAN\nMargaret Hamilton\nLaunch review\nApollo guidance computer\n- fix restart bug\n"
    "- sign off by Friday 12 June\nOwner: Sam",
    "Q3 ROADMAP\nOnboarding flow\nBilling v2\nHire two designers\n• owner Sam\n• budget review -> Anna\nRetro notes",
    "Sprint 14\nTODO | DOING | DONE\nSearch filters\nTag cleanup\nCluster labels\nDemo on Thursday",
    "Garden plan\nRaised bed by the fence\nTomatoes + basil\nCompost every 5 days\nNetting for strawberries",
    "Band rehearsal\nSetlist for the gig\nTune the bass\nNew strings for the violin\n* call the pub re: Friday",
]
SHOPS = ["Corner Shop", "Green Grocer", "City Pharmacy", "Hardware Store", "Bakery Müller"]
ITEMS = ["milk", "bread", "oat milk", "lemons", "copper pipe fittings", "ibuprofen", "sourdough loaf",
         "compost", "batteries", "coffee beans", "toothpaste", "tomato seedlings"]
# What a person would look for, per document (kind of document, its number among its kind): tag names.
EXPECTED = {("note", 0): {"every 0 days"}, ("note", 5): {"every 5 days"},
            ("note", 9): {"memory leak", "auth middleware"}, ("whiteboard", 0): {"margaret hamilton", "launch review"},
            ("whiteboard", 3): {"every 5 days"},
            ("receipt", 1): {"green grocer"}, ("receipt", 2): {"city pharmacy"}}

UNITS = {"day", "days", "week", "weeks", "month", "months", "year", "years", "hour", "hours", "minute", "minutes",
         "second", "seconds", "time", "times", "km", "kg", "percent", "euro", "euros", "dollar", "dollars"}
MARKUP = re.compile(r"[#*_`~|<>\[\]]|\]\(|https?://|^[-+•>] |^\d+[.)] ")
YEAR = re.compile(r"(19|20)\d\d")


def receipt(rng: random.Random, n: int) -> str:
    """A receipt as OCR reads it: the shop, the date and time, one item a line, the total, the card."""
    items = [(item, rng.randint(59, 1299) / 100) for item in rng.sample(ITEMS, rng.randint(2, 5))]
    lines = ["RECEIPT", SHOPS[n % len(SHOPS)], f"{rng.randint(1, 28):02d}/0{rng.randint(1, 9)}/2026 "
             f"{rng.randint(8, 20)}:{rng.randint(10, 59)}", *(f"{item} {price:.2f}" for item, price in items),
             f"TOTAL {sum(p for _, p in items):.2f}", f"VISA ****{rng.randint(1000, 9999)}", "THANK YOU"]
    return "\n".join(lines)


def documents() -> list[tuple[str, str]]:
    """(kind of document, text): a few dozen, from a fixed seed."""
    rng = random.Random(18)
    notes = [MARKDOWN[0].format(n=n) for n in range(6)] + MARKDOWN[1:]
    notes += [boilerplate(rng, note(rng, topic, (2, 3)), topic, n) for n, topic in enumerate(SENTENCES) if n % 2]
    return ([("note", t) for t in notes] + [("whiteboard", t) for t in WHITEBOARDS]
            + [("receipt", receipt(rng, n)) for n in range(8)])


def junk(kind: str, name: str, label: str) -> str | None:
    """Why a person would not choose this tag, or None."""
    if any(re.search(r"\s\s|[\n\r\t]", text) for text in (name, label)):
        return "line break"
    if any(MARKUP.search(text) for text in (name, label)):
        return "markup"
    if name in STOP_WORDS or name in UNITS:
        return "lone stop or unit word"
    figures = not re.search(r"[^\W\d_]", name)  # a date or a sum may be all figures, a year but no other number
    if figures and (kind not in ("date", "money") or name.isdigit() and not YEAR.fullmatch(name)):
        return "number only"
    return None


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> list[tuple[str, int, list[tuple]]]:
    """(kind of document, its number among its kind, its tags) for every document, tagged by the stage."""
    blobs = LocalBlobStore(tmp_path_factory.mktemp("blobs"))
    stage = Tag()
    stage.start(Settings())
    out, seen = [], {}
    try:
        for i, (kind, text) in enumerate(documents()):
            doc = TextDoc()
            doc.add(text)
            uri = blobs.put(f"doc{i}.json", json.dumps({"text": doc.text, "segments": doc.segments}).encode())
            seen[kind] = seen.get(kind, -1) + 1
            out.append((kind, seen[kind], stage.tags(blobs, uri)))
    finally:
        stage.stop()
    return out


def test_no_tag_is_junk(tagged, capsys):
    found: dict[str, list] = {}
    for kind, _, rows in tagged:
        found.setdefault(kind, [])
        found[kind] += [(why, tag, name) for tag, name, label, _ in rows if (why := junk(tag, name, label))]
    with capsys.disabled():
        print("\njunk tags per kind of document (tests/test_tag_quality.py)")
        print(f"{'documents':12} {'files':>5} {'tags':>5} {'junk':>5}  kinds of junk")
        for kind, bad in found.items():
            files = [rows for k, _, rows in tagged if k == kind]
            why = ", ".join(f"{w} {sum(b[0] == w for b in bad)}" for w in sorted({b[0] for b in bad}))
            print(f"{kind:12} {len(files):5d} {sum(map(len, files)):5d} {len(bad):5d}  {why}")
    assert not any(found.values()), "\n".join(f"{k}: {why}: {tag} {name!r}" for k, bad in found.items()
                                              for why, tag, name in bad)


def test_tags_keep_what_a_person_would_look_for(tagged):
    for kind, n, rows in tagged:
        missing = EXPECTED.get((kind, n), set()) - {name for _, name, *_ in rows}
        assert not missing, (kind, n, missing, rows)
