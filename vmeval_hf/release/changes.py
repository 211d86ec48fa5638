"""What changed between two releases, from their source lists alone (pure: no I/O).

A release manifest lists every source file of the question tree with its size and sha256
(``chess_task/chess_0007/prompt.txt``...), so two manifests say which questions were added,
removed or changed, and which parts of a changed question: ``prompt``, ``first_frame``,
``final_frame``, ``metadata``, ``goal``, ``ground_truth_video``. The build uses it for the
card's version history; :mod:`vmeval_hf.diff` reads the manifests of two published versions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..tree.model import FINAL, FIRST, GOAL, METADATA, PROMPT, VIDEO, id_sort_key
from .release_manifest import FileEntry, ReleaseManifest

#: source file name -> the part of a question (the dataset column) it holds
PARTS = {PROMPT: "prompt", FIRST: "first_frame", FINAL: "final_frame", METADATA: "metadata", GOAL: "goal",
         VIDEO: "ground_truth_video"}


@dataclass
class ReleaseDiff:
    """Questions added, removed and changed from version ``old`` to ``new`` (ids in natural order)."""

    old: str
    new: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: id -> the parts that differ, in the order of :data:`PARTS`
    changed: dict[str, list[str]] = field(default_factory=dict)
    #: domain -> {"added", "removed", "changed", "unchanged"} counts
    domains: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.old, "to": self.new, "added": list(self.added), "removed": list(self.removed),
                "changed": {qid: list(parts) for qid, parts in self.changed.items()},
                "domains": {d: dict(c) for d, c in self.domains.items()}}

    def counts(self) -> dict[str, Any]:
        """What the version log and the card keep: ``{"from", "added", "removed", "changed"}``."""
        return {"from": self.old, "added": len(self.added), "removed": len(self.removed),
                "changed": len(self.changed)}

    def summary(self) -> str:
        """One line: ``2 added, 1 removed, 3 changed since 1.0 (chess: 1 changed; maze: 2 added)``."""
        if self.empty:
            return f"no question changed since {self.old}"
        per = "; ".join(
            f"{d}: " + ", ".join(f"{c[k]} {k}" for k in ("added", "removed", "changed") if c[k])
            for d, c in self.domains.items() if c["added"] or c["removed"] or c["changed"])
        return (f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed "
                f"since {self.old} ({per})")


def _questions(sources: Iterable[FileEntry]) -> dict[str, tuple[str, dict[str, str]]]:
    """id -> (domain, {part: "size:sha256"}) from a source list."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    for source in sources:
        parts = source["path"].split("/")
        if len(parts) != 3 or not parts[0].endswith("_task"):
            continue  # not a question file (nothing else is listed today)
        domain, qid, name = parts[0][: -len("_task")], parts[1], parts[2]
        part = PARTS.get(name, name)
        out.setdefault(qid, (domain, {}))[1][part] = f"{source['size']}:{source['sha256']}"
    return out


def diff_manifests(old: ReleaseManifest, new: ReleaseManifest) -> ReleaseDiff:
    """The difference between two release manifests."""
    return diff_sources(old["version"], old["sources"], new["version"], new["sources"])


def diff_sources(old: str, old_sources: Iterable[FileEntry], new: str,
                 new_sources: Iterable[FileEntry]) -> ReleaseDiff:
    """The difference between the source lists of versions ``old`` and ``new``."""
    before, after = _questions(old_sources), _questions(new_sources)
    result = ReleaseDiff(old, new)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"added": 0, "removed": 0, "changed": 0,
                                                             "unchanged": 0})
    order = list(PARTS.values())
    for qid in sorted(set(before) | set(after), key=id_sort_key):
        if qid not in before:
            result.added.append(qid)
            counts[after[qid][0]]["added"] += 1
        elif qid not in after:
            result.removed.append(qid)
            counts[before[qid][0]]["removed"] += 1
        else:
            (_, was), (domain, now) = before[qid], after[qid]
            parts = sorted((p for p in set(was) | set(now) if was.get(p) != now.get(p)),
                           key=lambda p: (order.index(p) if p in order else len(order), p))
            if parts:
                result.changed[qid] = parts
            counts[domain]["changed" if parts else "unchanged"] += 1
    result.domains = {d: counts[d] for d in sorted(counts)}
    return result


# -- the card's version history ------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """What a card's "Versions" table needs besides the release being built: the versions before
    it (oldest first, as the log records them: ``version``, ``date``, ``questions``,
    ``content_sha256``, ``message``, ``changes``), this version's ``date`` (``YYYYMMDD``) and
    change note, and its predecessor's manifest, to count what this version changes."""

    earlier: tuple[dict[str, Any], ...] = ()
    date: str | None = None
    message: str | None = None
    previous: ReleaseManifest | None = None

    def rows(self, version: str, questions: int, content: str, sources: Iterable[FileEntry]) -> list[dict[str, str]]:
        """The table's rows, every cell as text; ``sources``: this version's source list (read only
        when there is a predecessor to diff against)."""
        changes = None
        if self.previous is not None:
            changes = diff_sources(self.previous["version"], self.previous["sources"], version, sources).counts()
        this = {"version": version, "date": self.date, "questions": questions, "content_sha256": content,
                "message": self.message, "changes": changes}
        rows = [*self.earlier, this]
        return [_row(r, first=i == 0) for i, r in enumerate(rows)]


def _cell(text: Any) -> str:
    """Table-safe text: one line, no column separator."""
    return " ".join(str(text).split()).replace("|", "\\|") if text is not None else ""


def _row(entry: dict[str, Any], *, first: bool) -> dict[str, str]:
    date = str(entry.get("date") or "")[:8]
    changes = entry.get("changes")
    if isinstance(changes, dict):
        what = ", ".join(f"{int(changes.get(k, 0))} {k}" for k in ("added", "removed", "changed"))
    else:
        what = "first version" if first else "-"
    return {"version": _cell(entry.get("version")),
            "date": f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 and date.isdigit() else _cell(date),
            "questions": _cell(entry.get("questions")), "content": _cell(str(entry.get("content_sha256") or "")[:12]),
            "note": _cell(entry.get("message")), "changes": what}
