"""Who is calling: a Firebase ID token verified by firebase-admin, or, on the local stack only, a
development token `Bearer dev:<user>` so that several users can be exercised by hand and by tests."""
from __future__ import annotations

import hmac
import re
from functools import cached_property

from fastapi import HTTPException, Request

from shared.config import Settings

_DEV_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,128}$")
CANARY_USER = "mindspace-canary"  # the load test's own account: its files are its own, like anyone's


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class Authenticator:
    def __init__(self, cfg: Settings):
        self.cfg = cfg

    @cached_property
    def _firebase(self):
        import firebase_admin

        # firebase-admin's own verifier (kid, RS256, audience, issuer, subject, expiry and signature
        # checks), with the certificate URL from config so the boundary can be tested offline.
        from firebase_admin._token_gen import TokenVerifier

        if not self.cfg.firebase_project_id:
            raise RuntimeError("AUTH_MODE=firebase needs FIREBASE_PROJECT_ID")
        try:
            app = firebase_admin.get_app("mindspace")
        except ValueError:
            app = firebase_admin.initialize_app(
                options={"projectId": self.cfg.firebase_project_id}, name="mindspace")
        verifier = TokenVerifier(app)
        if self.cfg.firebase_certs_url:
            verifier.id_token_verifier.cert_url = self.cfg.firebase_certs_url
        return verifier

    def user(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("send 'Authorization: Bearer <Firebase ID token>'")
        if self.cfg.canary_token and hmac.compare_digest(token.encode(), self.cfg.canary_token.encode()):
            return CANARY_USER
        if self.cfg.auth_mode == "dev":
            user = token.removeprefix("dev:")
            if not token.startswith("dev:") or not _DEV_USER.match(user):
                raise _unauthorized("development mode takes 'Bearer dev:<user>' (letters, digits, _.@-)")
            return user
        try:
            return self._firebase.verify_id_token(token, clock_skew_seconds=5)["uid"]
        except Exception as e:  # every firebase-admin token error means the same to the caller
            raise _unauthorized(f"invalid ID token: {e}") from None
