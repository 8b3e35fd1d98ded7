"""What comes back (issue 21): a file's related files across kinds, measured on labelled events each told by
a note, a whiteboard photo, a voice memo and a PDF; near-duplicates measured on a generated corpus with
known copies and near-misses (tests/near_duplicates.py); both printed at the end of `make test`."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from near_duplicates import INVOICE, INVOICES, NOTES, PHOTO_TEMPLATE, PHOTOS, corpus, jpeg, pairs

from functions.cluster import duplicates as d

from media import pdf, png, speech_wav, text_image

# Four events, each told four ways, and files about nothing of them.
EVENTS = {
    "kitchen": ("Kitchen renovation meeting with the contractor: the grey slate tiles are chosen, the budget is "
                "twelve thousand euros, and the work starts on the twelfth of March.",
                ["Kitchen renovation", "slate tiles chosen", "budget 12000 euros", "start 12 March"],
                "Memo after meeting the contractor about the kitchen renovation. We chose the grey slate tiles. "
                "The budget stays at twelve thousand euros and work starts in March.",
                "Kitchen renovation quote. Contractor: Nordbau. Slate floor tiles, new sink, extractor hood. "
                "Total twelve thousand euros. Start of works: March."),
    "museum": ("School trip to the science museum on the ninth: the bus leaves at eight, each child brings a "
               "packed lunch, and the ticket costs fourteen euros.",
               ["Science museum trip", "bus at 8:00", "packed lunch", "tickets 14 euros"],
               "Reminder about the school trip to the science museum. The bus leaves at eight in the morning. "
               "Pack a lunch for Lena and pay the fourteen euros.",
               "Permission form: school trip to the Science Museum. Departure by bus at 8:00. Pupils bring a "
               "packed lunch. Contribution: 14 euros per pupil."),
    "launch": ("Product launch planning: the billing service ships on June twelfth, Priya fixes the invoice "
               "rounding bug, and marketing prepares the announcement.",
               ["Launch planning", "billing ships June 12", "invoice bug: Priya", "announcement: marketing"],
               "Notes from the launch meeting. The billing service ships on the twelfth of June. Priya is fixing "
               "the invoice rounding bug and marketing writes the announcement.",
               "Release plan for the billing service. Ship date June 12. Open issue: invoice rounding, owner "
               "Priya. Marketing announcement ready the day before."),
    "garden": ("Garden club plant sale on Saturday: we sell tomato seedlings and herbs at the community hall, "
               "and the proceeds go to the new greenhouse.",
               ["Plant sale Saturday", "tomato seedlings, herbs", "community hall", "for the greenhouse"],
               "Voice note for the garden club. The plant sale is this Saturday at the community hall. Bring the "
               "tomato seedlings and herbs, the money goes to the greenhouse.",
               "Garden club newsletter. Plant sale at the community hall on Saturday: tomato seedlings, basil, "
               "parsley. All proceeds fund the new greenhouse."),
}
UNRELATED = {"astronomy.md": "Saturn is low in the south after ten; the telescope needs new batteries.",
             "football.md": "Football practice moved to the north pitch; bring shin guards and water.",
             "recipe.md": "Lentil soup: onions, carrots, red lentils, cumin; simmer for twenty-five minutes."}


def test_signatures_tell_copies_from_files_of_one_template():
    def sig(text):
        return d.signature(text).hashvalues.astype(np.uint64).tobytes()

    note = NOTES[0]
    assert d.jaccard(sig(note), sig(note.replace("grey", "blue") + " Done!")) >= d.TEXT_SAME
    assert d.jaccard(sig(INVOICE.format(**INVOICES[0])), sig(INVOICE.format(**INVOICES[1]))) < d.TEXT_SAME
    board = text_image(PHOTOS[0])
    small = jpeg(board.resize((board.width // 2, board.height // 2)), quality=40)

    assert d.bits_apart(d.phash(jpeg(board)), d.phash(small)) <= d.IMAGE_BITS
    assert d.phash(b"not an image") is None
    # A whiteboard of the same template may look alike to pHash: its words keep it apart (in find()).
    assert d.jaccard(sig(" ".join(PHOTOS[0])), sig(" ".join(PHOTO_TEMPLATE[0]))) < d.IMAGE_TEXT_SAME


@pytest.mark.on_containers
def test_related_files_cross_kinds_with_why(user, record_property):
    inputs = {}
    for event, (note, board, memo, page) in EVENTS.items():
        inputs[(event, "note")] = (f"{event}-note.md", note.encode())
        inputs[(event, "photo")] = (f"{event}-whiteboard.png", png(text_image(board)))
        inputs[(event, "memo")] = (f"{event}-memo.wav", speech_wav(memo))
        inputs[(event, "pdf")] = (f"{event}.pdf", pdf([page]))
    for name, text in UNRELATED.items():
        inputs[("none", name)] = (name, text.encode())
    files = user.upload_all(inputs)
    assert all(f["status"] == "ready" for f in files.values()), {k: f["status"] for k, f in files.items()}
    event_of = {f["id"]: key[0] for key, f in files.items()}
    precision: dict[str, list[float]] = defaultdict(list)
    for (event, kind), f in files.items():
        if event == "none":
            continue
        r = user.http.get(f"/v1/files/{f['id']}/related", params={"limit": 3})
        assert r.status_code == 200, r.text
        top = r.json()["related"]
        precision[kind].append(sum(event_of[x["file_id"]] == event for x in top) / 3)
        why = top[0]["why"]
        assert why["passage"] and why["related_passage"] and 0 < why["similarity"] <= 1
    rows = {kind: sum(p) / len(p) for kind, p in precision.items()}
    record_property("related_precision", rows)
    assert all(p >= 0.8 for p in rows.values()), rows
    other = user.http.get(f"/v1/files/{files[('kitchen', 'note')]['id']}/related")
    assert other.status_code == 200


def test_related_is_the_callers_own(user, other_user):
    mine = user.upload_all({"a": ("a.md", b"Notes about the harbour ferry timetable and the island.")})["a"]
    theirs = other_user.upload_all({"b": ("b.md", b"The harbour ferry timetable for the island changed.")})["b"]
    assert other_user.http.get(f"/v1/files/{mine['id']}/related").status_code == 404
    related = user.http.get(f"/v1/files/{mine['id']}/related").json()["related"]
    assert theirs["id"] not in [x["file_id"] for x in related]


def test_near_duplicates_are_found_and_near_misses_are_not(user, record_property):
    items = corpus()
    files = user.upload_all({key: (name, data) for key, name, data, _ in items})
    truth = {key: group for key, _, _, group in items}
    assert all(f["status"] == "ready" for f in files.values()), {k: f["status"] for k, f in files.items()}
    root = {key: f["duplicate_of"] or f["id"] for key, f in files.items()}
    found = pairs(root)
    wanted = pairs(truth)
    tp = len(found & wanted)
    precision, recall = tp / max(1, len(found)), tp / max(1, len(wanted))
    kinds = {"note": "notes edited", "daily": "twelve daily notes", "photo": "photos re-encoded",
             "memo": "recordings re-encoded", "meeting": "same template", "invoice": "same template",
             "template": "same template"}
    by_kind = {}
    for prefix, label in kinds.items():
        mine = {p for p in wanted | found if any(k.startswith(prefix) for k in p)}
        by_kind.setdefault(label, [0, 0, 0])
        by_kind[label][0] += len(mine & found & wanted)
        by_kind[label][1] += len(mine & found - wanted)
        by_kind[label][2] += len(mine & wanted - found)
    record_property("duplicates", {"precision": precision, "recall": recall, "pairs": len(wanted),
                                   "by_kind": by_kind})
    assert precision >= 0.95 and recall >= 0.9, by_kind
    # Twelve near-identical notes are one group, in one cluster, and one search hit with its copies counted.
    daily = [files[f"daily{n}"] for n in range(12)]
    assert len({root[f"daily{n}"] for n in range(12)}) == 1
    assert len({f["cluster"]["id"] if f["cluster"] else None for f in (user.file(d["id"]) for d in daily)}) == 1
    hits = [h for h in user.search("standup billing fix pull request release notes")
            if h["filename"].startswith("standup")]
    assert len(hits) == 1 and hits[0]["copies"] == 11
    groups = user.http.get("/v1/duplicates").json()
    assert groups[0]["root"]["file_id"] == files["daily0"]["id"] and len(groups[0]["copies"]) == 11
    # The group outlives its root: the next earliest copy takes its place.
    assert user.http.delete(f"/v1/files/{files['daily0']['id']}").status_code == 204
    heir = next(g for g in user.http.get("/v1/duplicates").json() if g["root"]["name"].startswith("standup"))
    assert heir["root"]["file_id"] == files["daily1"]["id"] and len(heir["copies"]) == 10
