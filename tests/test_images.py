"""Each function's image holds what the function needs (Docker-free): the function runs in a Python that sees
only the closure of its dependency group (local/images.py lays it out as a site-packages folder), its
module is imported and served as the image's CMD serves it, and the parts it imports lazily (its model,
its readers, its clients, tracing, GCS blobs) are exercised on small real inputs. Remote services are the
session's fakes at the wire (FCM, the GCS emulator, an OTLP receiver). A missing package fails here, with
the group it belongs in, not in a cold start on the cluster."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from local import images

pytestmark = pytest.mark.timeout(300)

# What every function does, after `module` (its main.py as the server loads it) or the API's app is there:
# what every process does at start, with the settings a cluster gives (logs as JSON, traces over OTLP,
# blobs in a GCS bucket), each importing its libraries on first use.
COMMON = """
import io, os, sys, uuid, hashlib, subprocess, shutil, wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from events.catalogue import Category, FileUploaded
from shared import tracing
from shared.blobs import LocalBlobStore, blob_store, file_key
from shared.config import Settings
from shared.observability import setup_logging
from shared.stage import Context, Rejected, Unsupported
from shared.textdoc import TextDoc

name, data_dir = sys.argv[2], Path(os.environ["DATA_DIR"])
cfg = Settings(data_dir=data_dir, otel_exporter_otlp_endpoint=os.environ["OTLP_URL"], blob_bucket="",
               embed_runtime=os.environ.get("EMBED_RUNTIME", "onnx"), model_idle_seconds=0)
setup_logging(name, fmt="json")
assert tracing.setup_tracing(name, cfg)
blob_store(Settings(blob_bucket="mindspace-backup")).bucket.blob("probe").exists()  # the GCS client, at the wire
blobs = LocalBlobStore(cfg.blob_dir)

def upload(filename, data, media_type, category):
    file_id = uuid.uuid4()
    uri = blobs.put(file_key("probe", file_id, filename), data, media_type)
    return FileUploaded(file_id=file_id, user_id="probe", blob_uri=uri, filename=filename, size=len(data),
                        media_type=media_type, category=category, sha256=hashlib.sha256(data).hexdigest())

def handle(event):
    try:
        return stage.handle(event, Context(cfg, blobs, None, None))
    except Unsupported as e:  # a reading that found nothing has still run every reader
        return e

def extracted(text):
    doc = TextDoc()
    doc.add(text)
    return doc.save(blobs, upload("note.txt", text.encode(), "text/plain", Category.text), "text")

if name == "api":
    import uvicorn
    config = uvicorn.Config("api.app:app", host="127.0.0.1", port=0)
    config.load()  # as `uvicorn api.app:app` does: the app, and the protocol classes it picks
else:
    from functions_framework import create_app
    from functions_framework._http import create_server
    source = os.path.realpath(f"functions/{name}/main.py")
    server = create_server(create_app("handle", source, "http"), debug=False)
    assert server.server_class.__name__ == "GunicornApplication", server.server_class  # else Flask's dev server
    module = next(m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == source)
    stage = module.handle.stage
    stage.start(cfg)
"""

TEXT = "Anna Berger meets the garden club in Lisbon next Friday at 3pm to plan the spring budget."

PROBES = {
    "api": """
from shared import media
from api.app import app
from api.auth import Authenticator
from shared.models import embedder
assert media.sniff(b"%PDF-1.7\\n", "x.pdf")[0] == "application/pdf"  # libmagic
assert Authenticator(Settings(firebase_project_id="probe"))._firebase  # firebase-admin's token verifier
assert embedder("", "cpu", 32, 0, "onnx", "").run(["a query"]).shape == (1, 384)  # as api/deps.py builds it
tracing.instrument_app(app)
""",
    "extract": """
import zipfile
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
parts = {"_rels/.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         '<Relationship Id="r1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
         'officeDocument" Target="word/document.xml"/></Relationships>',
         "word/document.xml": f'<w:document xmlns:w="{W}"><w:body><w:p><w:r><w:t>a paragraph</w:t></w:r></w:p>'
         '</w:body></w:document>',
         "word/header1.xml": f'<w:hdr xmlns:w="{W}"><w:p><w:r><w:t>h</w:t></w:r></w:p></w:hdr>'}
out = io.BytesIO()
with zipfile.ZipFile(out, "w") as z:
    for part, xml in parts.items():
        z.writestr(part, xml)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
assert "a paragraph" in blobs.get(handle(upload("a.docx", out.getvalue(), DOCX, Category.text)).text_uri).decode()
from odf.opendocument import OpenDocumentText
from odf.text import P
odt = OpenDocumentText()
odt.text.addElement(P(text="an ODT paragraph"))
out = io.BytesIO()
odt.write(out)
assert "an ODT" in blobs.get(handle(upload("a.odt", out.getvalue(), "application/vnd.oasis.opendocument.text",
                                           Category.text)).text_uri).decode()
handle(upload("a.html", b"<html><body><p>Hello</p><script>x</script></body></html>", "text/html", Category.text))
handle(upload("a.txt", "Grüße aus Köln".encode("latin-1"), "text/plain", Category.text))
""",
    "fetch": """
import ipaddress
from functions.fetch import guard
page = module.Page("https://example.org/a", "text/html", b"<html><head><title>Bread</title></head><body><nav>Home</nav>"
                   b"<article><p>Feed the starter twice a day with rye flour and water, then bake it hot.</p>"
                   b"</article></body></html>")
doc, meta = module.article(page)  # trafilatura
assert "starter" in doc.text, doc.text
assert guard.refusal(ipaddress.ip_address("169.254.169.254"), ()) and guard.GuardedTransport(())
from shared import media
assert media.sniff(b"%PDF-1.7\\n", "a.pdf")[0] == "application/pdf"  # libmagic
""",
    "imports": """
import zipfile
from functions.imports import formats
out = io.BytesIO()
with zipfile.ZipFile(out, "w") as z:
    z.writestr("vault/a.md", "---\\ntags: [garden]\\ncreated: 2024-05-01\\n---\\nWater the basil.")
archive = formats.open_zip(io.BytesIO(out.getvalue()), cfg)  # python-frontmatter
assert archive.items[0].labels == ["garden"], archive.items
enex = b'<?xml version="1.0"?><en-export><note><title>T</title><content>&lt;en-note&gt;x&lt;/en-note&gt;</content>' \\
       b'<created>20231105T101500Z</created><tag>work</tag></note></en-export>'
assert formats.enex(io.BytesIO(enex), cfg).items[0].labels == ["work"]  # defusedxml
from shared import media
media.sniff(b"hello", "a.md")  # libmagic
""",
    "ocr": """
import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageFont
image = Image.new("L", (900, 160), 255)
ImageDraw.Draw(image).text((20, 40), "Invoice 42 total", font=ImageFont.load_default(size=48), fill=0)
out = io.BytesIO()
image.save(out, "PNG")
assert "Invoice" in blobs.get(stage.read(upload("a.png", out.getvalue(), "image/png", Category.image),
                                         Context(cfg, blobs, None, None), "eng+deu").text_uri).decode()
pdf = pdfium.PdfDocument.new()
pdf.new_page(300, 200)
out = io.BytesIO()
pdf.save(out)
handle(upload("a.pdf", out.getvalue(), "application/pdf", Category.pdf))  # no database: the deployment's languages
""",
    "transcribe": """
if shutil.which("espeak-ng"):
    audio = subprocess.run(["espeak-ng", "--stdout", "Water the orchids on Sunday."], check=True,
                           capture_output=True).stdout
else:  # silence still loads the model and runs the decoder and the voice-activity filter
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(bytes(32000))
    audio = out.getvalue()
handle(upload("a.wav", audio, "audio/wav", Category.audio))
""",
    "embed": """
assert len(stage.model.run([TEXT])[0]) == 384  # batched: one vector per input
assert stage.chunker()(TEXT * 20, overlap=0.15)
from shared import languages
assert languages.detect("Die Kinder spielten den ganzen Tag im Garten")[0] == "de"  # py3langid, each chunk's
""",
    "tag": """
assert stage.tags(blobs, extracted(TEXT).text_uri)
""",
    "cluster": """
import pickle
import numpy as np
from functions.cluster import clustering
rng = np.random.default_rng(0)
vectors = np.concatenate([rng.normal(c, 0.05, (8, 384)) for c in (-1, 0, 1)]).astype(np.float32)
model, labels = clustering.fit(vectors, 3, 5, 10)  # above 10 files: PCA first
clustering.place(pickle.loads(pickle.dumps(model)), vectors[0])
clustering.label({0: ["garden tomato basil"], 1: ["invoice budget total"]})
""",
    "suggest": """
assert module.dates(TEXT, datetime.now(UTC), "Europe/Berlin")
""",
    "remind": """
from shared import schedule
schedule.first(datetime.now(UTC) + timedelta(days=1), "Europe/Berlin", "FREQ=WEEKLY;BYDAY=MO", datetime.now(UTC))
""",
    "notify": """
assert stage.fcm, "no FCM client"
stage.fcm.send("probe-device", "title", "body", {"k": "v"})  # to the session's fake FCM
""",
    "backup": """
import types
stage.refusal("mindspace-backup", "probe")
stage.resumable_above = 0  # the resumable, CRC32C-checked path too
event = types.SimpleNamespace(file_id=uuid.uuid4(), user_id="probe")
stage.upload("mindspace-backup", "probe/a.txt", b"bytes", {"sha256": "x", "filename": "a.txt",
                                                           "media_type": "text/plain"}, event)
stage.delete("mindspace-backup", "probe", event.file_id)
""",
    "deadletter": "",
}

# The driver: only the image's site-packages (no site: -S), the repository for our own code.
DRIVER = """
import site, sys
site.addsitedir(sys.argv[1])
exec(compile(sys.argv[3], "<common>", "exec"))
exec(compile(sys.argv[4], "<probe>", "exec"))
print("ok")
"""


def run_as_image(function: str, extras: tuple[str, ...], tmp_path, fcm, gcs, otlp, env: dict | None = None):
    try:
        folder = images.site(extras, tmp_path / "site-packages")
    except images.Missing as e:
        pytest.fail(f"group {','.join(extras)}: {e}; run make setup")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | {
        "DATA_DIR": str(tmp_path / "data"), "OTLP_URL": otlp.url, "STORAGE_EMULATOR_HOST": gcs.url,
        "FIREBASE_CREDENTIALS": str(fcm.credentials), "FCM_URL": fcm.url, "HOME": str(tmp_path),
        "OMP_NUM_THREADS": "1", **(env or {})}
    common = f"TEXT = {TEXT!r}\n" + COMMON
    proc = subprocess.run([sys.executable, "-S", "-c", DRIVER, str(folder), function, common, PROBES[function]],
                          cwd=images.ROOT, env=environ, capture_output=True, text=True, timeout=240)
    if proc.returncode == 0 and proc.stdout.strip().endswith("ok"):
        return
    missing = re.findall(r"ModuleNotFoundError: No module named '([^']+)'", proc.stderr)
    if missing:
        pytest.fail(f"{function} imports {missing[-1]!r}, which its image ({','.join(extras)}) lacks; it comes "
                    f"with {' or '.join(images.provider(missing[-1])) or 'no installed distribution'}: add that "
                    f"to the group {extras[-1]!r} in pyproject.toml\n{proc.stderr[-3000:]}")
    pytest.fail(f"{function} failed on its image's packages ({','.join(extras)}):\n{proc.stderr[-4000:]}")


@pytest.mark.parametrize("function", images.FUNCTIONS)
def test_each_function_runs_on_its_own_group(function, tmp_path, fcm, gcs, otlp):
    run_as_image(function, (function,), tmp_path, fcm, gcs, otlp)


def test_embed_runs_torch_on_its_gpu_group(tmp_path, fcm, gcs, otlp):
    """The gpu profile's embed image (EMBED_RUNTIME=torch): sentence-transformers on torch."""
    run_as_image("embed", ("embed", "embed-torch"), tmp_path, fcm, gcs, otlp, {"EMBED_RUNTIME": "torch"})


def test_the_groups_are_what_the_images_and_the_venv_install():
    project = images.pyproject()["project"]
    groups = project["optional-dependencies"]
    assert set(images.FUNCTIONS) <= groups.keys(), "every function has a group (empty where the base is enough)"
    everything = images.closure(("all",))  # what make setup installs: every group, so the local stack runs all
    for group in groups:
        if group not in ("test", "transcribe-cuda"):  # cuBLAS only on GPU images
            assert images.closure((group,)).keys() <= everything.keys(), group
    torch = [r for r in project["dependencies"] + sum(groups.values(), []) if re.match(r"torch\b", r)]
    assert torch and all(r == "torch==2.13.0" for r in torch), "torch is pinned: any other release pulls CUDA"
    assert "torch" not in images.closure(("api",)) and "torch" not in images.closure(("embed",))
    # The gpu profile builds its images from groups that exist.
    skaffold = yaml.safe_load((images.ROOT / "skaffold.yaml").read_text())
    for profile in skaffold["profiles"]:
        for artifact in (profile.get("build") or {}).get("artifacts", []):
            args = artifact["docker"]["buildArgs"]
            assert set(args.get("EXTRAS", args["FUNCTION"]).split(",")) <= groups.keys(), artifact["image"]
