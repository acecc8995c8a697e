"""Each user's language, remembered on the server and keyed by the signed-in identity (never in the URL).

One small JSON file per user under ``$PARCOURS_DATA_DIR/preferences/``, named by the SHA-256 of the
identity so that no e-mail address becomes a file name; written to a temporary file then renamed, so
that two sessions of the same user never leave half a file. A missing or unreadable file is French.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pipelines.presentation.catalogue import DEFAULT_LANGUAGE, LANGUAGES, Language, language_of


def preference_file(folder: Path, identity: str) -> Path:
    digest = hashlib.sha256(identity.strip().lower().encode("utf-8")).hexdigest()
    return folder / f"{digest}.json"


def load_language(folder: Path, identity: str | None) -> Language:
    if not identity:
        return DEFAULT_LANGUAGE
    try:
        stored = json.loads(preference_file(folder, identity).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_LANGUAGE
    value = stored.get("language") if isinstance(stored, dict) else None
    return language_of(value) if value in LANGUAGES else DEFAULT_LANGUAGE


def save_language(folder: Path, identity: str, language: Language) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = preference_file(folder, identity)
    staged = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    staged.write_text(json.dumps({"language": language_of(language)}), encoding="utf-8")
    staged.replace(target)
