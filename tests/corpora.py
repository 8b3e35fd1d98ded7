"""Labelled corpora for measuring clustering against known topics (issue 14): several topic sets, 10 to
300 files, unequal topics (3 to 60 files), files that belong to no topic, short notes and longer
documents, and files that share boilerplate (a template heading, a date line, a signature).

Everything is generated from a fixed seed; nothing is read from disk or the network. A corpus is a list
of (text, topic) with topic None for a file that belongs to no topic."""
from __future__ import annotations

import random
from dataclasses import dataclass

SENTENCES = {
    "cycling": [
        "The chain skipped on the climb again, so the derailleur needs adjusting.",
        "Pumped the tyres to 80 psi before the Sunday ride along the river.",
        "Replace the worn brake pads on the road bike before the group ride.",
        "Rode 62 km today with 900 m of climbing; legs felt heavy on the last hill.",
        "Clean and lube the chain after every wet ride or it starts to squeak.",
        "The new saddle is much better; no numbness after two hours in the saddle.",
        "Book the bike in for a service: the gears slip and the headset creaks.",
        "Fixed a puncture on the commute; carry a spare inner tube and tyre levers.",
        "Try the gravel route through the forest next weekend with the club.",
        "Cadence drills on the trainer: five minutes at 100 rpm, two minutes easy.",
        "The cassette and chain are worn; order an 11-32 cassette for the hills.",
        "Bought lights and a reflective vest for cycling to work in winter.",
        "Check the spokes on the rear wheel, it wobbles slightly when braking.",
        "Planning a three day bikepacking trip with panniers and a tent.",
    ],
    "finance": [
        "Pay the electricity invoice and move the rest of the salary into savings.",
        "The accountant needs the tax receipts before the end of March.",
        "Compare mortgage interest rates from three banks before renewing the loan.",
        "Monthly budget: rent and groceries took most of the income again.",
        "Cancel the unused subscriptions to save about 40 euros a month.",
        "Set up an emergency fund covering three months of expenses.",
        "Index fund contributions go up to 300 a month from the next payslip.",
        "Check the credit card statement for the double charge from the airline.",
        "File the tax return and claim the home office deduction this year.",
        "The pension statement arrived; contributions are behind the plan.",
        "Transfer the deposit for the flat and keep the bank receipt.",
        "Spending review: restaurants and takeaway cost more than the car.",
        "Ask the bank about fees on the current account and switch if they stay.",
        "Dividends from the shares were reinvested in the portfolio.",
    ],
    "cooking": [
        "Simmer the tomato sauce for an hour with garlic, basil and a pinch of sugar.",
        "The sourdough starter needs feeding twice a day with flour and water.",
        "Roast the chicken at 200 degrees for 80 minutes and rest it before carving.",
        "Recipe idea: lentil curry with coconut milk, cumin and fresh coriander.",
        "Marinate the tofu overnight in soy sauce, ginger and sesame oil.",
        "Bake the banana bread for 55 minutes until a skewer comes out clean.",
        "Shopping for dinner: onions, carrots, celery, stock and risotto rice.",
        "Knead the pizza dough for ten minutes and let it rise for two hours.",
        "The soup was too salty; add potato and more water next time.",
        "Sharpen the chef's knife and replace the old non-stick frying pan.",
        "Whisk eggs, sugar and butter for the lemon cake; fold in the flour gently.",
        "Meal prep for the week: rice, roasted vegetables and chickpea stew.",
        "Grill the salmon skin side down and finish with lemon and dill.",
        "Make pancakes on Saturday morning with blueberries and maple syrup.",
    ],
    "garden": [
        "Planted tomato seedlings and basil in the raised bed by the fence.",
        "The cucumbers need watering every morning during the heat wave.",
        "Buy compost and mulch for the vegetable beds this weekend.",
        "Prune the apple tree before spring and check the roses for aphids.",
        "The courgette plants are flowering; the first harvest is close.",
        "Sow carrot and radish seeds outdoors after the last frost.",
        "Weed the herb patch and move the mint into its own pot.",
        "Cover the strawberry beds with netting against the birds.",
        "Mow the lawn and trim the hedge along the path to the shed.",
        "Slugs ate the lettuce again; try copper tape around the beds.",
        "Divide the perennials in autumn and plant tulip bulbs for spring.",
        "The rain barrel is full; connect it to the drip irrigation.",
        "Turn the compost heap and add dry leaves to balance the grass clippings.",
        "Repot the lemon tree into a larger pot with citrus soil.",
    ],
    "music": [
        "Practise the guitar chords for the new song before band rehearsal.",
        "The piano needs tuning before the recital next month.",
        "Learn the drum pattern for the jazz standard we play on Friday.",
        "Buy new strings for the violin and rosin for the bow.",
        "Record the vocal harmonies for the chorus in the home studio.",
        "The orchestra programme includes a Beethoven symphony and a Mozart concerto.",
        "Write lyrics for the second verse and try the melody in a minor key.",
        "Tune the bass and rehearse the setlist for the gig at the pub.",
        "Scales for twenty minutes, then sight reading from the etude book.",
        "The microphone hums when the amplifier is on; try another cable.",
        "Metronome at 90 bpm for the fast passage until it is clean.",
        "Sign up for the choir auditions; they want a short solo piece.",
        "Mix the demo track: the kick drum is too loud against the vocals.",
        "Transcribe the saxophone solo by ear and learn it in all keys.",
    ],
    "travel": [
        "Book the flight to Lisbon and a hotel near the old town for three nights.",
        "Renew the passport before the trip; it expires in four months.",
        "Packing list: adapter, sunscreen, hiking boots, rain jacket and snacks.",
        "The train from Vienna to Venice leaves at 9:10; seats are reserved.",
        "Check whether the visa for Japan can be done online.",
        "Hostel in Kyoto confirmed; check in after three in the afternoon.",
        "Rent a car at the airport and drive the coast road to the ferry.",
        "Travel insurance covers cancellations and lost luggage up to 2000.",
        "Itinerary: two days in Rome, then the night train to Sicily.",
        "Exchange some money for the market stalls and the airport taxi.",
        "Download offline maps of the city and the metro before landing.",
        "The museum pass saves money if we see more than three museums.",
        "Boarding pass is in the airline app; the gate closes 20 minutes before.",
        "Book a guided hike to the volcano crater on the second day of the holiday.",
    ],
    "health": [
        "Dentist appointment to fix the cracked filling on the left molar.",
        "Take the antibiotics twice a day with food for seven days.",
        "Blood test results: iron is low, the doctor suggests supplements.",
        "Physiotherapy exercises for the knee: ten squats and balance work daily.",
        "Book the annual eye exam; reading glasses feel too weak now.",
        "Sleep has been poor; no screens an hour before bed and less coffee.",
        "The allergy season started; antihistamines help with the sneezing.",
        "Ask the pharmacist whether ibuprofen is fine with the blood pressure pills.",
        "Vaccination booster is due in October at the clinic.",
        "Back pain after long days at the desk; raise the monitor and stretch.",
        "Dermatologist should look at the mole on the shoulder.",
        "Keep a food diary for two weeks to find what triggers the migraines.",
        "The GP referred me to a specialist for the persistent cough.",
        "Refill the prescription for the inhaler before it runs out.",
    ],
    "programming": [
        "The unit tests fail on the CI server but pass locally; check the timezone.",
        "Refactor the parser into smaller functions and add type hints.",
        "Memory leak in the worker: the cache never evicts old entries.",
        "Upgrade the database driver and rerun the migration scripts.",
        "Write a regression test for the off-by-one error in pagination.",
        "The API returns 500 when the JSON body is empty; validate the input first.",
        "Profile the slow query; an index on the created_at column may help.",
        "Review the pull request for the authentication middleware.",
        "Docker image is 2 GB; use a slim base image and a multi-stage build.",
        "Rebase the feature branch on main and resolve the merge conflicts.",
        "Add logging around the retry loop to see why the job hangs.",
        "Learn Rust ownership and borrowing with the small command line project.",
        "The compiler warns about an unused variable in the error handler.",
        "Deploy the hotfix to production after the staging smoke tests pass.",
    ],
    "home": [
        "The kitchen tap drips; replace the washer or call the plumber.",
        "Paint the hallway walls in light grey; two coats of emulsion.",
        "The boiler pressure drops every week; bleed the radiators.",
        "Fix the squeaky hinge on the bedroom door with some oil.",
        "Measure the living room window for new curtains and a rail.",
        "Seal the gap around the bathtub with fresh silicone.",
        "The washing machine leaks from the door seal; order a new gasket.",
        "Drill holes for the shelves and use wall plugs in the plaster.",
        "Replace the smoke alarm batteries and test every detector.",
        "Clean the gutters before the autumn storms fill them with leaves.",
        "The fuse trips when the kettle and the oven run together.",
        "Sand and varnish the wooden floor in the study.",
        "Insulate the loft to cut the heating bill this winter.",
        "Get three quotes for retiling the bathroom floor.",
    ],
    "pets": [
        "The dog needs her vaccinations and a worming tablet at the vet.",
        "Buy grain free cat food and a new scratching post.",
        "Walk the dog twice a day; she pulls on the lead near other dogs.",
        "Puppy training class on Thursday: sit, stay and recall.",
        "The cat has been sneezing; book a check-up if it continues.",
        "Clean the fish tank and test the water for nitrates.",
        "Flea treatment for both cats is due at the start of the month.",
        "Brush the dog's coat; she sheds a lot in spring.",
        "Find a pet sitter to feed the rabbits while we are away.",
        "The hamster cage needs fresh bedding and a new water bottle.",
        "Microchip details must be updated with the new address.",
        "Trim the dog's claws; they click on the kitchen floor.",
        "The kitten chewed the charger cable; hide the wires.",
        "Pet insurance renewal went up by 15 percent this year.",
    ],
}

# Files that belong to no topic: a receipt, a whiteboard photo's text, a voice memo, a code, a quote...
STRAYS = [
    "RECEIPT Corner Shop 14:32 milk 1.19 bread 2.40 total 3.59 VISA ****4471 thank you",
    "Whiteboard: Q3 roadmap, onboarding flow, billing v2, hire two designers, owner Sam",
    "Voice memo: remind me to call grandma about lunch on Sunday",
    "Wifi password for the guest network is blue-otter-77",
    "Parking ticket number 55321, paid at the machine by the station",
    "Quote I liked: the best time to plant a tree was twenty years ago",
    "Licence plate of the rental: KL 4491 B, silver hatchback",
    "Meeting notes: the quarterly offsite moves to the second week of June",
    "Gift ideas for Mia's birthday: a puzzle, a scarf, concert tickets",
    "The library card number is 2298-1174, renew the loan online",
    "Lost and found: black umbrella left in the taxi on Friday night",
    "Conference badge pickup opens at 8:00 in hall B",
    "Locker combination at the swimming pool: 4-19-33",
    "Thank-you card for the neighbours who watered the plants",
    "Election day: polling station is the primary school on Elm Street",
    "Spare key is with the neighbour at number 12",
    "Book recommendation from Tom: a history of the Silk Road",
    "Printer ink cartridge model HP 305 black and tricolour",
    "Volunteer shift at the food bank on the first Saturday of the month",
    "Frequent flyer number LH 9921 4471 88",
]

# Generic prose that long documents carry besides their topic (minutes, covering text, sign-offs).
FILLER = [
    "This document collects the notes so far and will be updated as things change.",
    "Please let me know if anything here is unclear or missing.",
    "I will follow up on the open points next week.",
    "Summary of the last few weeks, written down so nothing gets lost.",
    "More details below, in no particular order.",
    "Thanks again to everyone who helped with this.",
]

HEADING = "# {Topic} note {n}"
DATE = "Date: 2026-{month:02d}-{day:02d}"
SIGNATURE = "--\nAlex Example\nSent from my phone"


@dataclass
class Corpus:
    name: str
    files: list[tuple[str, str | None]]  # (text, topic or None)

    @property
    def topics(self) -> list[str | None]:
        return [t for _, t in self.files]


def note(rng: random.Random, topic: str, sentences: tuple[int, int]) -> str:
    return " ".join(rng.sample(SENTENCES[topic], rng.randint(*sentences)))


def document(rng: random.Random, topic: str, paragraphs: tuple[int, int]) -> str:
    """A longer document: paragraphs of its topic's sentences with some generic prose between them
    (a few hundred to a thousand words: several chunks of 200 tokens)."""
    out = [rng.choice(FILLER)]
    for _ in range(rng.randint(*paragraphs)):
        out.append(" ".join(rng.sample(SENTENCES[topic], 6)))
        if rng.random() < 0.4:
            out.append(rng.choice(FILLER))
    return "\n\n".join(out)


def boilerplate(rng: random.Random, text: str, topic: str | None, n: int, heading: bool = True) -> str:
    """The template a note-taking app writes around every note: a heading, a date line, a signature."""
    head = HEADING.format(Topic=topic.capitalize(), n=n) if heading and topic else "# Note"
    date = DATE.format(month=rng.randint(1, 12), day=rng.randint(1, 28))
    return f"{head}\n{date}\n\n{text}\n\n{SIGNATURE}"


def build(name: str, sizes: dict[str, int], strays: int = 0, seed: int = 0, long_share: float = 0.0,
          template: str = "", sentences: tuple[int, int] = (1, 3)) -> Corpus:
    """`sizes`: files per topic; `strays`: files of no topic; `long_share`: the share of files that are
    longer documents; `template`: "" (none), "topic" (the notes of a topic under "# Cycling note 2", a date
    line and a signature; files of no topic without), "plain" (every file under "# Note", a date line and a
    signature)."""
    rng = random.Random(seed)
    files: list[tuple[str, str | None]] = []
    for topic, size in sizes.items():
        for _ in range(size):
            long = rng.random() < long_share
            files.append((document(rng, topic, (3, 6)) if long else note(rng, topic, sentences), topic))
    files += [(text, None) for text in rng.sample(STRAYS, strays)]
    rng.shuffle(files)
    if template:
        counters: dict[str | None, int] = {}
        for i, (text, topic) in enumerate(files):
            if topic is None and template == "topic":  # a receipt, a photo, a memo: not written in the app
                continue
            counters[topic] = counters.get(topic, 0) + 1
            files[i] = (boilerplate(rng, text, topic, counters[topic], heading=template == "topic"), topic)
    return Corpus(name, files)


CORPORA = [
    # The new user: 12 short notes in three topics under "# Cycling note 2", plus strays.
    build("issue-14", {"cycling": 4, "finance": 4, "cooking": 4}, strays=12, seed=0, template="topic",
          sentences=(1, 2)),
    build("tiny", {"garden": 4, "music": 3}, strays=3, seed=1),
    build("three-topics", {"garden": 8, "finance": 8, "music": 8}, seed=2),
    build("template-unequal", {"cycling": 40, "finance": 12, "cooking": 6, "health": 3, "pets": 20}, strays=10,
          seed=3, template="plain"),
    build("documents", {"travel": 10, "programming": 8, "home": 6, "health": 5}, strays=4, seed=4, long_share=1.0),
    build("mixed-300", {"cycling": 60, "finance": 45, "cooking": 40, "garden": 35, "music": 30, "travel": 25,
                        "health": 20, "programming": 15, "home": 8, "pets": 4}, strays=18, seed=5,
          long_share=0.15, template="topic"),
]


def embed(corpus: Corpus, chunk_tokens: int = 200, overlap: float = 0.15):
    """Each file's chunk vectors, chunked and embedded as the embed stage does (semchunk by the model's
    own tokens, all-MiniLM-L6-v2, normalised)."""
    import semchunk

    from shared.models import embedder

    model = embedder()
    chunker = semchunk.chunkerify(model.tokenizer, chunk_tokens)
    chunks = [[c for c in chunker(text, overlap=overlap) if c.strip()] for text, _ in corpus.files]
    vectors = model.run([c for cs in chunks for c in cs])
    out, start = [], 0
    for cs in chunks:
        out.append(vectors[start:start + len(cs)])
        start += len(cs)
    return out
