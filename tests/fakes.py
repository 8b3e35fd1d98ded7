"""Stand-ins for the remote services that cannot run here, at the wire: a loopback server speaking
FCM's HTTP v1 protocol and Google's OAuth token endpoint (the real firebase-admin SDK makes its real
requests to it), gcp-storage-emulator for the real google-cloud-storage client, and a loopback OTLP/HTTP
collector that keeps the spans the stack's processes export."""
from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROJECT = "mindspace-test"


def fcm_error(code: int, status: str, error_code: str | None = None, message: str = "") -> tuple[int, dict]:
    """FCM's error body: google.rpc.Status with an FcmError detail (firebase-admin reads its @type)."""
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}] \
        if error_code else []
    return code, {"error": {"code": code, "message": message or status, "status": status, "details": details}}


UNREGISTERED = fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
INVALID = fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM token")
QUOTA = fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for this device.")


class JSONHandler(BaseHTTPRequestHandler):
    """A loopback server's handler that answers JSON, as Google's and OpenAI's APIs do, and keeps quiet."""

    def answer(self, code: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


class FakeFCM:
    """`script[token]` lists the answers the next sends to that token get (then success); `sent` keeps
    every message FCM accepted, `attempts[token]` counts every try."""

    def __init__(self, folder: Path):
        self.script: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        self.sent: list[dict] = []
        self.attempts: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        fake = self

        class Handler(JSONHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path == "/token":  # google-auth's JWT-bearer grant for the service account
                    return self.answer(200, {"access_token": "test-token", "expires_in": 3600,
                                             "token_type": "Bearer"})
                if not self.path.endswith("/messages:send") or self.headers.get("authorization") != \
                        "Bearer test-token":
                    return self.answer(401, fcm_error(401, "UNAUTHENTICATED")[1])
                message = json.loads(body)["message"]
                with fake.lock:
                    fake.attempts[message["token"]] += 1
                    scripted = fake.script[message["token"]]
                    code, answer = scripted.pop(0) if scripted else (200, None)
                    if code == 200:
                        fake.sent.append(message)
                        answer = {"name": f"projects/{PROJECT}/messages/{len(fake.sent)}"}
                self.answer(code, answer)


        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.credentials = folder / "firebase-service-account.json"
        self.credentials.write_text(json.dumps({
            "type": "service_account", "project_id": PROJECT, "private_key_id": "test-key",
            "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
            "client_email": f"notify@{PROJECT}.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": f"{self.url}/token"}))

    def to(self, token: str) -> list[dict]:
        with self.lock:
            return [m for m in self.sent if m["token"] == token]

    def close(self) -> None:
        self.server.shutdown()


class StorageEmulator:
    """gcp-storage-emulator in its own process, in memory."""

    def __init__(self, bucket: str = "mindspace-test"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        exe = Path(sys.executable).parent / "gcp-storage-emulator"
        self.proc = subprocess.Popen([str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
                                      "--default-bucket", bucket], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


KEPT = ("mindspace.", "cloudevents.")  # the attributes a test reads; a database span's SQL is not kept


class OTLPReceiver:
    """A collector speaking OTLP/HTTP (protobuf), as the SDK's exporter posts to one: keeps each span's
    service, name, ids and Mindspace attributes."""

    def __init__(self):
        self.spans: deque[dict] = deque(maxlen=200_000)  # a whole session's, a load test's included
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                self.spans.extend({
                    "service": service, "name": s.name, "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                    "parent_id": s.parent_span_id.hex(),
                    "attributes": {a.key: a.value.string_value for a in s.attributes if a.key.startswith(KEPT)},
                } for s in scope.spans)

    def trace(self, trace_id: str) -> dict[str, dict]:
        """The spans of one trace, by span id."""
        return {s["span_id"]: s for s in list(self.spans) if s["trace_id"] == trace_id}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- generative AI providers ----------------------------------------------------------------------------

# The providers' own error bodies: Gemini's google.rpc.Status, OpenAI's {"error": {message, type, code}}.
GEMINI_QUOTA = (429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                                "message": "Resource has been exhausted (e.g. check quota)."}})
GEMINI_OVERLOADED = (503, {"error": {"code": 503, "status": "UNAVAILABLE",
                                     "message": "The model is overloaded. Please try again later."}})
GEMINI_INTERNAL = (500, {"error": {"code": 500, "status": "INTERNAL", "message": "An internal error has occurred."}})
OPENAI_QUOTA = (429, {"error": {"message": "You exceeded your current quota, please check your plan and billing "
                                "details.", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}})
OPENAI_SERVER = (500, {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                                 "type": "server_error", "param": None, "code": None}})
OPENAI_OVERLOADED = (503, {"error": {"message": "The engine is currently overloaded, please try again later.",
                                     "type": "server_error", "param": None, "code": None}})


class FakeAI:
    """A loopback server speaking Gemini's generateContent and streamGenerateContent (alt=sse) and OpenAI's
    chat completions (streaming included), as the google-genai and openai SDKs call them. `script` lists
    errors (status, body) the next requests get, whichever protocol; `requests` keeps every request
    (protocol, path, headers, JSON body); `answer(prompt)` writes the reply (by default the first
    sentence of passage 1, cited, and a citation of a passage that does not exist); `delay` stalls."""

    def __init__(self):
        self.script: list[tuple[int, dict]] = []
        self.requests: list[dict] = []
        self.delay = 0.0
        self.lock = threading.Lock()
        self.answer = self.quote_first_passage
        fake = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                protocol = "openai" if self.path.endswith("/chat/completions") else "gemini"
                with fake.lock:
                    fake.requests.append({"protocol": protocol, "path": self.path, "headers": dict(self.headers),
                                          "body": body})
                    scripted = fake.script.pop(0) if fake.script else None
                time.sleep(fake.delay)
                if scripted:
                    return self.answer(*scripted)
                prompt = fake.prompt_of(protocol, body)
                words = fake.answer(prompt).split(" ")
                pieces = [" ".join(words[i:i + 3]) + (" " if i + 3 < len(words) else "")
                          for i in range(0, len(words), 3)]
                usage = (len(prompt) // 4, len(words))
                if protocol == "openai":
                    return self.openai(body, pieces, usage)
                return self.gemini("streamGenerateContent" in self.path, pieces, usage)

            def gemini(self, stream, pieces, usage):
                def chunk(text, last):
                    out = {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
                           "modelVersion": "gemini-test"}
                    if last:
                        out["candidates"][0]["finishReason"] = "STOP"
                        out["usageMetadata"] = {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
                                                "totalTokenCount": sum(usage)}
                    return out
                if not stream:
                    return self.answer(200, chunk("".join(pieces), True))
                self.events([chunk(p, i == len(pieces) - 1) for i, p in enumerate(pieces)], done=False)

            def openai(self, body, pieces, usage):
                base = {"id": "chatcmpl-test", "created": int(time.time()), "model": body.get("model", "")}
                counted = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
                if not body.get("stream"):
                    return self.answer(200, base | {"object": "chat.completion", "usage": counted, "choices": [
                        {"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "".join(pieces)}}]})
                chunks = [base | {"object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
                chunks.append(base | {"object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    chunks.append(base | {"object": "chat.completion.chunk", "choices": [], "usage": counted})
                self.events(chunks, done=True)

            def events(self, chunks, done):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for c in chunks:
                    self.chunk(f"data: {json.dumps(c)}\r\n\r\n".encode())
                if done:
                    self.chunk(b"data: [DONE]\n\n")
                self.chunk(b"")

            def chunk(self, data: bytes):
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()


        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def prompt_of(protocol: str, body: dict) -> str:
        if protocol == "openai":
            return "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
        return "\n".join(p.get("text", "") for c in body["contents"] for p in c["parts"])

    @staticmethod
    def quote_first_passage(prompt: str) -> str:
        passage = prompt.split('<passage n="1"', 1)[1].split(">", 1)[1].split("</passage>")[0].strip()
        return f"Your files say: {passage.split('.')[0].strip()} [1]. Also [7]."

    def prompts(self) -> list[str]:
        with self.lock:
            return [self.prompt_of(r["protocol"], r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
