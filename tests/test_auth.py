"""Authentication at its boundary: Firebase ID tokens signed by a test key and verified by
firebase-admin, whose signing certificates come from a loopback HTTP server (a fake at the wire)."""
from __future__ import annotations

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import HTTPException
from google.auth import crypt, jwt
from starlette.requests import Request

from api.auth import Authenticator
from shared.config import Settings

PROJECT = "mindspace-test"


def _key_and_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem_key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def firebase():
    pem_key, cert = _key_and_cert()
    body = json.dumps({"test-kid": cert}).encode()

    class Certs(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "public, max-age=60")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Certs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signer = crypt.RSASigner.from_string(pem_key, key_id="test-kid")

    def token(uid="alice", **over):
        now = int(time.time())
        claims = {"iss": f"https://securetoken.google.com/{PROJECT}", "aud": PROJECT, "sub": uid,
                  "iat": now, "exp": now + 3600, "auth_time": now, **over}
        return jwt.encode(signer, claims).decode()

    cfg = Settings(auth_mode="firebase", firebase_project_id=PROJECT,
                   firebase_certs_url=f"http://127.0.0.1:{server.server_port}/certs")
    yield Authenticator(cfg), token
    server.shutdown()


def request(token: str | None) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return Request({"type": "http", "headers": headers})


def test_a_firebase_token_names_its_user(firebase):
    auth, token = firebase
    assert auth.user(request(token("alice"))) == "alice"


@pytest.mark.parametrize("claims", [
    {"aud": "another-project"},
    {"iss": "https://securetoken.google.com/another-project"},
    {"exp": int(time.time()) - 600, "iat": int(time.time()) - 4000},
    {"sub": ""},
])
def test_a_token_for_someone_else_or_expired_is_refused(firebase, claims):
    auth, token = firebase
    with pytest.raises(HTTPException) as e:
        auth.user(request(token(**claims)))
    assert e.value.status_code == 401


def test_a_token_signed_by_another_key_is_refused(firebase):
    auth, _ = firebase
    pem_key, _ = _key_and_cert()
    forged = jwt.encode(crypt.RSASigner.from_string(pem_key, key_id="test-kid"),
                        {"iss": f"https://securetoken.google.com/{PROJECT}", "aud": PROJECT, "sub": "mallory",
                         "iat": int(time.time()), "exp": int(time.time()) + 60}).decode()
    with pytest.raises(HTTPException):
        auth.user(request(forged))


def test_development_tokens_only_in_development_mode(firebase):
    auth, _ = firebase
    with pytest.raises(HTTPException):
        auth.user(request("dev:alice"))  # production refuses them
    dev = Authenticator(Settings(auth_mode="dev"))
    assert dev.user(request("dev:alice")) == "alice"
    for bad in (None, "alice", "dev:", "dev:../etc"):
        with pytest.raises(HTTPException):
            dev.user(request(bad))


def test_the_canary_token_signs_in_as_the_canary_user_only():
    canary = Authenticator(Settings(canary_token="c" * 64))
    assert canary.user(request("c" * 64)) == "mindspace-canary"
    for bad in ("c" * 63, "c" * 65, "dev:mindspace-canary"):
        with pytest.raises(HTTPException):
            canary.user(request(bad))
    with pytest.raises(HTTPException):
        Authenticator(Settings()).user(request(""))  # no token set: no canary user, and no empty token

