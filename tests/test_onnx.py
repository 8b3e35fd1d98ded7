"""MiniLM through ONNX Runtime (shared/models.py, the graph exported by shared/onnx_embed.py) gives the
torch model's vectors, so chunks stored by either runtime and queries embedded by the API stay
comparable; and the API never loads torch."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from shared.models import Embedder, OnnxEmbedder, embedder

WORDS = ("garden tomato budget meeting travel invoice river lighthouse ship basil fence morning sun quarterly "
         "review marketing spend anna march water seedling market plan call note idea").split()
FOREIGN = [
    "Der Gärtner pflanzt im März Tomaten und Basilikum am Zaun.", "Réunion trimestrielle : budget marketing à revoir.",
    "El barco llegó al faro por la mañana.", "Встреча по бюджету перенесена на четверг.",
    "会议改到星期四下午在蓝色会议室。", "東京の庭でトマトを育てています。", "정원에 물을 주는 것을 잊지 마세요.",
    "الاجتماع يوم الخميس في الغرفة الزرقاء", "Η συνάντηση μεταφέρθηκε την Πέμπτη.", "Spotkanie w czwartek o 15:00.",
]
ODD = ["", " ", "\n\n", "\t", ".", "?!", "a", "I", "🌱🍅", "🙂 ok", "[CLS] [SEP] [PAD]", "<b>bold</b> &amp; html",
       "https://example.com/path?q=1&r=2", "def f(x):\n    return x ** 2", "2026-12-01 09:00 +01:00",
       "€12.50 / $13.99 / ¥1500", "ALL CAPS SHOUTING TEXT", "mIxEd CaSe", "naïve café résumé", "   padded   "]


def corpus() -> list[str]:
    """About 200 texts: queries, notes, long texts past the model's 256 tokens, other scripts, odd inputs."""
    rnd = random.Random(3)
    words = lambda n: " ".join(rnd.choice(WORDS) for _ in range(n))  # noqa: E731
    texts = [words(rnd.randint(1, 6)) for _ in range(70)]  # queries
    texts += [words(rnd.randint(40, 200)) + "." for _ in range(60)]  # notes, some near the window
    texts += [words(rnd.randint(300, 1500)) for _ in range(20)]  # cut at 256 tokens, as the model cuts them
    texts += ["Antidisestablishmentarianism " * 400, "x" * 5000, " ".join(FOREIGN) * 20]
    texts += FOREIGN + [f.lower() for f in FOREIGN] + ODD + [o * 3 for o in ODD if o.strip()]
    return texts


@pytest.fixture(scope="module")
def torch_model() -> Embedder:
    return embedder(runtime="torch")


@pytest.fixture(scope="module")
def onnx_model() -> OnnxEmbedder:
    return embedder(runtime="onnx")


def test_onnx_vectors_match_torch(torch_model, onnx_model):
    texts = corpus()
    assert len(texts) >= 200
    want, got = torch_model.run(texts), onnx_model.run(texts)
    assert got.shape == want.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4)
    cosine = np.sum(want * got, axis=1)
    worst = int(np.argmin(cosine))
    assert cosine[worst] >= 0.999, f"{texts[worst][:80]!r}: cosine {cosine[worst]:.5f}"


def test_a_vector_does_not_depend_on_its_batch(onnx_model):
    texts = corpus()[:70]  # short and long together: padding must not reach the mean
    together = onnx_model.run(texts)
    alone = np.stack([onnx_model.run([t])[0] for t in texts])
    assert np.max(np.abs(together - alone)) < 1e-4


def test_int8_stays_close_to_float(onnx_model):
    """The quantised graph is exported beside the float one; how close it is decides where it is used."""
    int8 = embedder(runtime="onnx-int8")
    assert int8.file.parent == onnx_model.file.parent and int8.file != onnx_model.file
    texts = corpus()[:120]
    assert np.min(np.sum(int8.run(texts) * onnx_model.run(texts), axis=1)) >= 0.95


def test_the_chunker_counts_tokens_as_the_model_does(torch_model, onnx_model):
    """The embed stage chunks by the ONNX runtime's tokenizer: its counts are the torch tokenizer's, so a
    chunk of CHUNK_TOKENS still fits the model's window."""
    for text in corpus():
        mine = len(onnx_model.tokenizer.encode(text, add_special_tokens=False))
        theirs = len(torch_model.tokenizer.encode(text, add_special_tokens=False))
        assert mine == theirs, text[:80]


def test_a_missing_export_says_how_to_make_it(tmp_path):
    with pytest.raises(RuntimeError, match="python -m shared.onnx_embed"):
        OnnxEmbedder(onnx_path=str(tmp_path)).run(["hello"])


def group_maps(pgid: int) -> str:
    """The memory maps of every process in a process group: the libraries each has loaded."""
    maps = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                maps.append((stat.parent / "maps").read_text())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return "\n".join(maps)


def test_the_api_searches_without_torch(stack, user):
    """A vector search embeds the query in the API's process: ONNX Runtime is loaded there, torch never."""
    r = user.http.get("/v1/search", params={"q": "what did I plan for the garden", "mode": "vector"})
    assert r.status_code == 200, r.text
    maps = group_maps(stack.procs["api"].pid)
    assert "onnxruntime" in maps
    assert "libtorch" not in maps and "/torch/" not in maps
