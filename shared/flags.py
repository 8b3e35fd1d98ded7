"""Feature flags with a rollout percentage, for a gradual rollout per user.

`FLAGS` (the ConfigMap) names flags and their state: `suggest_reminders=25%,hybrid_search=on`, each `on`,
`off` or a percentage; the caller hands it in (`cfg.flags`). A user's side of a flag is a stable hash of
flag and user: the same user stays on one side in every process and on every call, different flags split
users independently, and raising the percentage only adds users (on at 25% means on at 50%). A flag
`FLAGS` does not name has its declared default; a name not declared below is refused when the settings
are read (shared/config.py), so a typo cannot silently leave a flag at its default.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType

from shared.metrics import FLAG_EVALUATIONS

# Every flag, with its state when FLAGS does not name it (True: on for everyone).
DEFAULTS = {
    "suggest_reminders": True,  # the suggest stage proposes reminders from dates in a file's text
    "hybrid_search": True,  # search fuses vector and full-text rankings; off: vector ranking alone
    # suggested reminders' titles written by the ASK_PROVIDER model (the sentence goes to it); off: trimmed
    "ai_reminder_titles": False,
}

STATE = re.compile(r"(on|off|(\d{1,3}(?:\.\d+)?)%)")


@lru_cache(maxsize=8)
def parse(spec: str) -> Mapping[str, float]:
    """The percentage of users each named flag is on for; ValueError says what is wrong and where."""
    flags: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, state = (s.strip() for s in item.partition("="))
        m = STATE.fullmatch(state.lower())
        if not sep or not m:
            raise ValueError(f"FLAGS: {item!r} is not name=on, name=off or name=N% (e.g. suggest_reminders=25%)")
        if name not in DEFAULTS:
            raise ValueError(f"FLAGS: unknown flag {name!r}; known flags: {', '.join(sorted(DEFAULTS))}")
        if name in flags:
            raise ValueError(f"FLAGS: {name!r} is given twice")
        percent = 100.0 if m.group(1) == "on" else 0.0 if m.group(1) == "off" else float(m.group(2))
        if percent > 100:
            raise ValueError(f"FLAGS: {item!r}: a percentage lies between 0% and 100%")
        flags[name] = percent
    return MappingProxyType(flags)


def bucket(flag: str, user_id: str) -> float:
    """The user's place in [0, 100) for this flag: uniform, stable, independent between flags."""
    digest = hashlib.sha256(f"{flag}\0{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def enabled(flag: str, user_id: str, spec: str) -> bool:
    """Whether `flag` is on for this user under `spec` (the FLAGS setting, `cfg.flags`); counted per variant."""
    if flag not in DEFAULTS:
        raise KeyError(f"feature flag {flag!r} is not declared in shared/flags.py DEFAULTS")
    percent = parse(spec).get(flag, 100.0 if DEFAULTS[flag] else 0.0)
    on = bucket(flag, user_id) < percent
    FLAG_EVALUATIONS.labels(flag, "on" if on else "off").inc()
    return on
