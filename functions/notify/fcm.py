"""Firebase Cloud Messaging through firebase-admin, with the service account mounted from a Secret.

FCM_URL points the SDK at another endpoint (the tests' loopback server speaking FCM's HTTP v1
protocol); firebase-admin has no option for it, so the one attribute it reads is set here, as
api/auth.py does for the certificate URL."""
from __future__ import annotations

import json
import threading
from pathlib import Path

# FCM's answers, by what they mean for a device token or for the delivery.
GONE = ("UnregisteredError", "SenderIdMismatchError", "InvalidArgumentError")  # drop the token
TRANSIENT = ("UnavailableError", "InternalError", "QuotaExceededError", "ResourceExhaustedError",
             "UnknownError", "DeadlineExceededError", "RefreshError", "TransportError")


class FCM:
    def __init__(self, credentials_file: str, project_id: str = "", fcm_url: str = ""):
        self.credentials_file, self.project_id, self.fcm_url = credentials_file, project_id, fcm_url
        self._app = None
        self._lock = threading.Lock()

    def app(self):
        """The firebase-admin app, made once (the notify stage does it at start, to say early if it cannot)."""
        with self._lock:
            if self._app is None:
                import firebase_admin
                from firebase_admin import credentials, messaging

                account = json.loads(Path(self.credentials_file).read_text())
                project = self.project_id or account["project_id"]
                self._app = firebase_admin.initialize_app(
                    credentials.Certificate(account), {"projectId": project}, name="mindspace-notify")
                if self.fcm_url:
                    messaging._get_messaging_service(self._app)._fcm_url = (
                        f"{self.fcm_url.rstrip('/')}/v1/projects/{project}/messages:send")
        return self._app

    def send(self, token: str, title: str, body: str, data: dict[str, str]) -> str:
        """Push one message to one device; the message id, or the SDK's exception."""
        from firebase_admin import messaging

        message = messaging.Message(token=token, notification=messaging.Notification(title=title, body=body),
                                    data=data)
        return messaging.send(message, app=self.app())

    def close(self) -> None:
        if self._app is not None:
            import firebase_admin

            firebase_admin.delete_app(self._app)
            self._app = None


def meaning(error: Exception) -> str:
    """'gone' (the token is dead), 'transient' (retry the delivery) or 'failed' (this message cannot go)."""
    names = {c.__name__ for c in type(error).__mro__}
    if names & set(GONE) and ("InvalidArgumentError" not in names or "token" in str(error).lower()):
        return "gone"  # an invalid argument drops the device only when it is the token FCM refused
    if names & set(TRANSIENT):
        return "transient"
    return "failed"
