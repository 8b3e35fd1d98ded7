"""The CLI's side of the API: one authenticated client, and an error answer printed as the API words it."""
from __future__ import annotations

import os
import sys

import httpx
from rich.console import Console

console = Console()


def client(args) -> httpx.Client:
    token = args.token or os.environ.get("MINDSPACE_TOKEN") or f"dev:{os.environ.get('MINDSPACE_USER', 'me')}"
    return httpx.Client(base_url=args.api, headers={"Authorization": f"Bearer {token}"}, timeout=120)


def check(resp: httpx.Response) -> dict | list | None:
    if resp.is_error:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        console.print(f"[red]error {resp.status_code}:[/] {detail}")
        sys.exit(1)
    return resp.json() if resp.content else None
