"""A generated corpus with known near-duplicates and near-misses (issue 21): notes edited a little, photos
of text re-encoded, resized and cropped, a recording re-encoded; beside them files from the same
templates with different content, which are not duplicates. `corpus()` gives (key, name, bytes, group):
files of one group are copies of each other; a group of one is no duplicate of anything."""
from __future__ import annotations

import io
import random

from PIL import Image

from media import speech_ogg, speech_wav, text_image

NOTES = [
    "Kitchen renovation: the contractor starts on 12 March, the tiles are the grey slate ones from the shop on "
    "Mill Road, and the budget is twelve thousand euros including the new sink and the extractor hood.",
    "Book club picks for spring: The Remains of the Day first, then Piranesi in April. Maria hosts in March and "
    "brings the lemon cake; remember to ask Tom whether he finished the last one.",
    "Car insurance renewal: the broker quoted 640 euros for the year with the windscreen cover, 590 without. "
    "The policy number is on the green letter in the hall drawer; call before the 28th.",
    "Garden plan: move the raspberries to the north fence, sow carrots and radishes after the last frost, and "
    "build a second compost bin from the old pallets behind the shed.",
    "Marathon training week 6: long run of 24 km on Sunday at an easy pace, intervals on Tuesday, rest on "
    "Friday. The left knee felt stiff after the hills, so stretch more and ice it.",
    "Notes from the parents' evening: Lena reads well above her age, maths is steady, she should practise "
    "times tables; the school trip to the science museum is on the 9th and costs 14 euros.",
]
# Same template, different content: a person's many meeting notes and invoices look alike, and are not copies.
MEETING = "Weekly sync {date}. Attendees: {who}. Decided: {decided}. Next: {next}. Blockers: {blocked}."
MEETINGS = [
    dict(date="3 June", who="Ana, Ben, Chen", decided="ship the billing fix on Thursday",
         next="Ben writes the migration", blocked="none"),
    dict(date="10 June", who="Ana, Chen, Dev", decided="postpone the mobile release to July",
         next="Dev updates the roadmap", blocked="the app store review"),
    dict(date="17 June", who="Ben, Chen, Dev", decided="hire a second designer for the onboarding flow",
         next="Chen drafts the job post", blocked="budget approval from finance"),
]
INVOICE = "Invoice {n} from {vendor}. Work: {work}. Amount due {amount} euros by {due}. Thank you for your business."
INVOICES = [dict(n="2024-117", vendor="Nordic Plumbing", work="replaced the kitchen sink trap and two valves",
                 amount="185", due="15 May"),
            dict(n="2024-131", vendor="Nordic Plumbing", work="installed a new boiler and radiator thermostats",
                 amount="2,340", due="30 June")]
PHOTOS = [["Sprint planning", "Launch moved to June 12", "Billing bug: Priya"],
          ["Shopping list", "eggs, flour, lemons", "olive oil, basil"]]
PHOTO_TEMPLATE = [["Sprint planning", "Launch moved to August 3", "Search bug: Marco"]]  # PHOTOS[0]'s layout
SPEECH = ["The plumber said the sink leaks because the trap washer is worn out; he comes back on Friday.",
          "Pick up the dry cleaning on Thursday and book the dentist for the kids before the holidays."]


def edited(text: str, rng: random.Random) -> str:
    """A small edit, as people make them: a word changed, a sentence added, punctuation and case."""
    words = text.split()
    i = rng.randrange(len(words))
    choice = rng.choice(["word", "append", "punctuation"])
    if choice == "word":
        words[i] = rng.choice(["new", "also", "really", "maybe", "soon"])
        return " ".join(words)
    if choice == "append":
        return text + " " + rng.choice(["Update: confirmed by phone.", "Check again next week.", "Done!"])
    return text.replace(",", ";").replace(". ", ".  ").lower()


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def corpus(seed: int = 7) -> list[tuple[str, str, bytes, str]]:
    rng = random.Random(seed)
    files = []
    for n, note in enumerate(NOTES):
        files.append((f"note{n}", f"note{n}.md", note.encode(), f"note{n}"))
        for copy in range(2):
            files.append((f"note{n}-edit{copy}", f"note{n}-v{copy + 2}.md", edited(note, rng).encode(), f"note{n}"))
    for n, fill in enumerate(MEETINGS):
        files.append((f"meeting{n}", f"sync-{n}.md", MEETING.format(**fill).encode(), f"meeting{n}"))
    for n, fill in enumerate(INVOICES):
        files.append((f"invoice{n}", f"invoice-{n}.txt", INVOICE.format(**fill).encode(), f"invoice{n}"))
    # Twelve near-identical notes (a reminder re-typed every day): one group.
    daily = "Daily standup: finish the billing fix, review Chen's pull request, and update the release notes."
    for n in range(12):
        files.append((f"daily{n}", f"standup-{n}.md", f"{daily} Day {n + 1}.".encode(), "daily"))
    for n, lines in enumerate(PHOTOS):
        image = text_image(lines)
        w, h = image.size
        files.append((f"photo{n}", f"photo{n}.jpg", jpeg(image), f"photo{n}"))
        files.append((f"photo{n}-low", f"photo{n}-whatsapp.jpg", jpeg(image, quality=40), f"photo{n}"))
        files.append((f"photo{n}-small", f"photo{n}-small.jpg", jpeg(image.resize((w * 6 // 10, h * 6 // 10))),
                      f"photo{n}"))
        files.append((f"photo{n}-crop", f"photo{n}-crop.jpg", jpeg(image.crop((w // 40, h // 40, w - w // 40,
                                                                                  h - h // 40))), f"photo{n}"))
    for n, lines in enumerate(PHOTO_TEMPLATE):
        files.append((f"template{n}", f"board-{n}.jpg", jpeg(text_image(lines)), f"template{n}"))
    for n, sentence in enumerate(SPEECH):
        files.append((f"memo{n}", f"memo{n}.wav", speech_wav(sentence), f"memo{n}"))
        files.append((f"memo{n}-ogg", f"memo{n}.ogg", speech_ogg(sentence), f"memo{n}"))
    return files


def pairs(groups: dict[str, str]) -> set[frozenset]:
    """Every pair of files in one group."""
    keys = sorted(groups)
    return {frozenset((a, b)) for i, a in enumerate(keys) for b in keys[i + 1:] if groups[a] == groups[b]}
