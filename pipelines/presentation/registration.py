"""A study's registration log in words, for every place a result is shown (pages, reports, CLI, CSV)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipelines.presentation.catalogue import Language, t
from pipelines.presentation.formats import moment


def plan_lines(log: Sequence[Mapping[str, str]], language: Language = "fr") -> list[str]:
    """The registration, then each amendment with its reason; a line saying there is none when unamended."""
    if not log:
        return [t("plan.none", language)]
    lines = []
    for entry in log:
        withheld = set(entry.get("not_shown") or ())  # text the privacy guard flagged: never shown
        shown = {f: t("value.not_shown", language) if f in withheld else entry.get(f, "") for f in ("by", "reason")}
        values = {
            "at": moment(entry.get("at", ""), language),
            "by": shown["by"],
            "version": entry.get("version", ""),
            "sha": str(entry.get("sha256", ""))[:12],
        }
        if entry.get("event") == "amended":
            lines.append(t("plan.amended", language, reason=shown["reason"], **values))
        else:
            lines.append(t("plan.registered", language, **values))
    if all(e.get("event") != "amended" for e in log):
        lines.append(t("plan.unamended", language))
    return lines
