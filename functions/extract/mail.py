"""E-mail (.eml, RFC 5322 with MIME) through the standard library's parser: the headers a person reads, the
text body (or the HTML body's visible text), and each attachment, which becomes a file of its own."""
from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass

from functions.extract.readers import html_text
from shared.errors import Rejected
from shared.media import safe_name

HEADERS = ("Subject", "From", "To", "Cc", "Date")


@dataclass
class Attachment:
    index: int  # its place among the message's attachments, which names it across retries
    filename: str
    data: bytes


def read(data: bytes, max_attachments: int) -> tuple[str, list[Attachment], int, str | None]:
    """The message's text, its first max_attachments attachments, how many more it had, and when it was sent
    (ISO 8601, from a Date header that parses; None otherwise)."""
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
    except Exception as e:  # noqa: BLE001 - the parser is lenient; what it still refuses is in the bytes
        raise Rejected(f"not a readable e-mail: {type(e).__name__}: {e}") from None
    lines = []
    for name in HEADERS:
        try:
            value = message.get(name)
        except Exception:  # noqa: BLE001 - a malformed header costs that header, not the message
            value = None
        if value:
            lines.append(f"{name}: {' '.join(str(value).split())}")
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        content = _content(body)
        lines += ["", html_text(content) if body.get_content_subtype() == "html" else content]
    attachments, skipped = [], 0
    for index, part in enumerate(message.iter_attachments()):
        if len(attachments) == max_attachments:
            skipped += 1
            continue
        payload = part.get_payload(decode=True) if not part.is_multipart() else part.as_bytes()
        if payload:
            name = safe_name(part.get_filename() or f"attachment-{index + 1}")
            attachments.append(Attachment(index, name, payload))
    if attachments:  # named in the message's text too: "the mail with the invoice PDF"
        lines += ["", "Attachments: " + ", ".join(a.filename for a in attachments)]
    return "\n".join(lines), attachments, skipped, _sent(message)


def _sent(message) -> str | None:
    try:
        when = getattr(message.get("Date"), "datetime", None)
    except Exception:  # noqa: BLE001 - a Date that does not parse is no date
        return None
    return when.isoformat() if when is not None else None


def _content(part) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken transfer encoding
        content = (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")
    return content if isinstance(content, str) else content.decode("utf-8", errors="replace")
