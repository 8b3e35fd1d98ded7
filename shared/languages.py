"""Languages, as each part of Mindspace names them: a user's settings say ISO 639-1 codes ("en", "de"),
Tesseract reads with its own packs ("eng", "deu"), PostgreSQL stems with text search configurations
("english", "german"), and a passage's language is detected by py3langid.

No import here loads anything: the API validates settings with these tables, the ocr stage picks
Tesseract's packs, and the embed stage detects (py3langid is imported on the first detection, and
only the embed stage has it).
"""
from __future__ import annotations

import threading
import unicodedata
from functools import cache

# The languages a user may choose: ISO 639-1 -> (Tesseract pack, PostgreSQL text search configuration).
# A language PostgreSQL has no stemmer for is searched with 'simple' (words as written, lower-cased).
LANGUAGES: dict[str, tuple[str, str]] = {
    "ar": ("ara", "arabic"), "ca": ("cat", "catalan"), "cs": ("ces", "simple"), "da": ("dan", "danish"),
    "de": ("deu", "german"), "el": ("ell", "greek"), "en": ("eng", "english"), "es": ("spa", "spanish"),
    "eu": ("eus", "basque"), "fa": ("fas", "simple"), "fi": ("fin", "finnish"), "fr": ("fra", "french"),
    "ga": ("gle", "irish"), "he": ("heb", "simple"), "hi": ("hin", "hindi"), "hu": ("hun", "hungarian"),
    "hy": ("hye", "armenian"), "id": ("ind", "indonesian"), "it": ("ita", "italian"), "ja": ("jpn", "simple"),
    "ko": ("kor", "simple"), "lt": ("lit", "lithuanian"), "ne": ("nep", "nepali"), "nl": ("nld", "dutch"),
    "no": ("nor", "norwegian"), "pl": ("pol", "simple"), "pt": ("por", "portuguese"), "ro": ("ron", "romanian"),
    "ru": ("rus", "russian"), "sr": ("srp", "serbian"), "sv": ("swe", "swedish"), "ta": ("tam", "tamil"),
    "th": ("tha", "simple"), "tr": ("tur", "turkish"), "uk": ("ukr", "simple"), "vi": ("vie", "simple"),
    "yi": ("yid", "yiddish"), "zh": ("chi_sim", "simple"),
}
TESSERACT_TO_ISO = {pack: iso for iso, (pack, _) in LANGUAGES.items()}
# The script Tesseract's orientation and script detection (OSD) names -> the packs that read it, best first.
SCRIPT_PACKS: dict[str, tuple[str, ...]] = {
    "Arabic": ("ara", "fas", "script/Arabic"), "Han": ("chi_sim", "chi_tra", "script/HanS"),
    "Cyrillic": ("rus", "ukr", "srp", "script/Cyrillic"), "Greek": ("ell", "script/Greek"),
    "Hebrew": ("heb", "script/Hebrew"), "Devanagari": ("hin", "nep", "script/Devanagari"),
    "Japanese": ("jpn", "script/Japanese"), "Katakana": ("jpn",), "Hiragana": ("jpn",),
    "Hangul": ("kor", "script/Hangul"), "Thai": ("tha", "script/Thai"), "Armenian": ("hye", "script/Armenian"),
    "Tamil": ("tam", "script/Tamil"),
}
SIMPLE = "simple"  # the configuration of a passage whose language is unknown or has no stemmer
MIN_DETECT_CHARS = 12  # shorter passages are not guessed at: their language is the user's first
_LOCK = threading.Lock()


class UnknownLanguage(ValueError):
    pass


def check(codes: list[str]) -> list[str]:
    """The codes as given, lower-cased and without repeats; an unknown one raises with the known ones."""
    out = []
    for code in codes:
        code = code.strip().lower()
        if code not in LANGUAGES:
            raise UnknownLanguage(f"{code!r} is not a language Mindspace reads; known: {', '.join(sorted(LANGUAGES))}")
        if code not in out:
            out.append(code)
    return out


def tesseract(codes: list[str], installed: set[str]) -> tuple[str, list[str]]:
    """Tesseract's `lang` for the user's languages ("eng+deu"), with the installed packs only, and the codes
    whose pack is missing. Empty when none is installed (the caller falls back to OCR_LANGUAGES)."""
    have = [LANGUAGES[c][0] for c in codes if c in LANGUAGES and LANGUAGES[c][0] in installed]
    missing = [c for c in codes if c not in LANGUAGES or LANGUAGES[c][0] not in installed]
    return "+".join(have), missing


def from_tesseract(lang: str) -> list[str]:
    """ISO codes of a Tesseract `lang` ("eng+deu" -> ["en", "de"]); packs of no known language are left out."""
    return [TESSERACT_TO_ISO[p] for p in lang.split("+") if p in TESSERACT_TO_ISO]


def script_pack(script: str, installed: set[str]) -> str | None:
    """The installed pack that reads a script OSD named, or None (Latin, or no pack for it here)."""
    return next((p for p in SCRIPT_PACKS.get(script, ()) if p in installed), None)


def config(code: str | None) -> str:
    """The PostgreSQL text search configuration of a language: its stemmer, or 'simple'."""
    return LANGUAGES.get(code or "", ("", SIMPLE))[1]


def configs(codes: list[str]) -> list[str]:
    """The configurations a query of a user with these languages is parsed with: each language's, then
    'simple' (a passage of no known language is indexed with it)."""
    out = [config(c) for c in codes]
    return list(dict.fromkeys([*out, SIMPLE]))


@cache
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str, among: list[str] | None = None) -> tuple[str | None, float]:
    """(ISO code, probability) of a passage's language by py3langid: among the given languages when some are
    given (a user's), else among the 97 it knows. A passage too short to tell gives (None, 0)."""
    letters = sum(ch.isalpha() for ch in text)
    if letters < MIN_DETECT_CHARS and not any(_dense(ch) for ch in text):
        return None, 0.0
    identifier = _identifier()
    with _LOCK:  # its rank() keeps no state, but the model's arrays are shared: one caller at a time
        ranked = identifier.rank(text)
    if among and _latin(text):  # a user's languages choose among Latin-script ones; another script tells itself
        wanted = set(among)
        ranked = [r for r in ranked if r[0] in wanted] or ranked
    total = sum(p for _, p in ranked) or 1.0
    code, probability = ranked[0]
    return code, round(float(probability) / total, 2)


def _latin(text: str) -> bool:
    """Whether most of the text's letters are Latin ones."""
    letters = [ch for ch in text if ch.isalpha()]
    return sum(unicodedata.name(ch, "").startswith("LATIN") for ch in letters) * 2 > len(letters)


def _dense(ch: str) -> bool:
    """A character of a script that writes a word in one to three characters (Han, kana, Hangul)."""
    return unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


def layer_weight(text: str) -> float:
    """How much text a PDF text layer holds, in Latin characters' worth: a Han, kana or Hangul character
    carries a word, an Arabic or Hebrew one about two Latin letters (their vowels are mostly unwritten)."""
    weight = 0.0
    for ch in text:
        if ch.isspace():
            continue
        if _dense(ch):
            weight += 4
        elif "\u0590" <= ch <= "\u08ff":  # Hebrew, Arabic, Syriac, Thaana, their supplements
            weight += 2
        else:
            weight += 1
    return weight
