"""Near-duplicates, beyond the upload's byte-identical dedupe: the same note edited a little, the same photo
re-encoded, resized or cropped, the same recording re-encoded (its transcript). Text is compared by MinHash
over word shingles (datasketch), found through locality-sensitive bands kept in PostgreSQL; an image also
by its perceptual hash (imagehash's pHash), and then its text must agree too, so that two whiteboards of
one template with different words stay apart. A group's root is its earliest file; the others point to it
(files.duplicate_of). Thresholds measured on tests/near_duplicates.py's corpus (tests/test_duplicates.py)."""
from __future__ import annotations

import hashlib
import io
import re

import numpy as np

PERMUTATIONS, BANDS = 128, 32  # 4 rows a band: pairs from a Jaccard of about 0.4 become candidates
SHINGLE = 2  # words: one changed word costs two shingles, so a small edit stays close
TEXT_SAME = 0.6  # estimated Jaccard: edited copies measured 0.76 and up, one template's other texts 0.29 at most
IMAGE_BITS = 10  # of pHash's 64 bits at most this many differ: the same picture
IMAGE_TEXT_SAME = 0.5  # … and an image's text, read again by OCR, at least this close
_WORD = re.compile(r"\w+", re.U)


def signature(text: str):
    from datasketch import MinHash  # imported on first use: a cold start need not pay

    words = [w.lower() for w in _WORD.findall(text)]
    shingles = {" ".join(words[i:i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}
    m = MinHash(num_perm=PERMUTATIONS, seed=1)
    m.update_batch([s.encode() for s in shingles])
    return m


def bands(m) -> list[int]:
    rows = PERMUTATIONS // BANDS
    return [int.from_bytes(hashlib.blake2b(m.hashvalues[b * rows:(b + 1) * rows].tobytes(), digest_size=8).digest(),
                           "big", signed=True) for b in range(BANDS)]


def jaccard(a: bytes, b: bytes) -> float:
    return float(np.mean(np.frombuffer(a, np.uint64) == np.frombuffer(b, np.uint64)))


def phash(data: bytes) -> int | None:
    """pHash as a signed 64-bit integer (PostgreSQL's bigint); None for what Pillow cannot open."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            bits = imagehash.phash(image).hash.flatten()
    except Exception:  # noqa: BLE001 - the ocr stage has said what is wrong with the image
        return None
    return int.from_bytes(np.packbits(bits).tobytes(), "big", signed=True)


def bits_apart(a: int, b: int) -> int:
    """How many of two pHashes' 64 bits differ (stored signed, as PostgreSQL's bigint)."""
    return ((a ^ b) & (2**64 - 1)).bit_count()


def find(conn, file: dict, text: str, image: bytes | None) -> dict:
    """Record the file's signatures and, where it is a near-duplicate, join it to its group: returns
    {"duplicate_of": root or None, "similar": [(file, how close)]}. Under the caller's per-user lock."""
    m = signature(text)
    mine = m.hashvalues.astype(np.uint64).tobytes()
    user, fid = file["user_id"], file["id"]
    conn.execute("DELETE FROM text_bands WHERE file_id = %s", (fid,))
    conn.execute("""INSERT INTO text_signatures (file_id, user_id, minhash) VALUES (%s, %s, %s)
                    ON CONFLICT (file_id) DO UPDATE SET minhash = excluded.minhash""", (fid, user, mine))
    mine_bands = bands(m)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO text_bands (user_id, band, hash, file_id) VALUES (%s, %s, %s, %s)",
                        [(user, b, h, fid) for b, h in enumerate(mine_bands)])
    candidates = conn.execute(
        """SELECT DISTINCT s.file_id, s.minhash, f.phash, f.created_at, coalesce(f.duplicate_of, f.id) AS root
           FROM text_bands b JOIN text_signatures s ON s.file_id = b.file_id JOIN files f ON f.id = b.file_id
           WHERE b.user_id = %s AND b.file_id <> %s
             AND (b.band, b.hash) IN (SELECT * FROM unnest(%s::int[], %s::bigint[]))""",
        (user, fid, list(range(BANDS)), mine_bands)).fetchall()
    ph = phash(image) if image is not None else None
    if ph is not None:
        conn.execute("UPDATE files SET phash = %s WHERE id = %s", (ph, fid))
    similar = []
    for c in candidates:
        j = jaccard(mine, bytes(c["minhash"]))
        if ph is not None and c["phash"] is not None:  # two pictures: the same picture, and the same words
            same = bits_apart(ph, c["phash"]) <= IMAGE_BITS and j >= IMAGE_TEXT_SAME
        else:
            same = j >= TEXT_SAME
        if same:
            similar.append((c, j))
    if not similar:
        return {"duplicate_of": None, "similar": []}
    roots = {c["root"] for c, _ in similar}
    root = conn.execute("SELECT id FROM files WHERE id = ANY(%s) OR id = %s ORDER BY created_at, id LIMIT 1",
                        (list(roots), fid)).fetchone()["id"]
    # The group's members, this file's included, point to its earliest file; the root points nowhere.
    conn.execute("""UPDATE files SET duplicate_of = CASE WHEN id = %(r)s THEN NULL ELSE %(r)s END
                    WHERE user_id = %(u)s AND (id = ANY(%(g)s) OR duplicate_of = ANY(%(g)s))""",
                 {"r": root, "u": user, "g": [*roots, fid]})
    return {"duplicate_of": None if root == fid else root,
            "similar": [(str(c["file_id"]), round(j, 3)) for c, j in similar]}
