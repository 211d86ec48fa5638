"""What changed between two releases, from their source lists alone (pure: no I/O).

A release manifest lists every source file of the question tree with its size and sha256
(``chess_task/chess_0007/prompt.txt``...), so two manifests say which questions were added,
removed or changed, and which parts of a changed question: ``prompt``, ``first_frame``,
``final_frame``, ``metadata``, ``goal``, ``ground_truth_video``. The build uses it for the
card's version history; :mod:`vmeval_hf.diff` reads the manifests of two published versions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..tree.model import FINAL, FIRST, GOAL, METADATA, PROMPT, VIDEO, id_sort_key
from .release_manifest import FileEntry, ReleaseManifest, sources_of

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


Question = tuple[str, str, dict[str, str]]  # (domain, id, {part: "size:sha256"})


def _questions(sources: Iterable[FileEntry]) -> Iterator[tuple[str, Question]]:
    """The questions of a source list in path order, one at a time: ``(folder + "/", (domain, id,
    parts))``. A question's files are next to each other in path order, and the folders come in
    the order of their ``folder/`` prefixes; files that are not a question's are skipped (nothing
    else is listed today)."""
    key, question = None, None
    for source in sources:
        parts = source["path"].split("/")
        if len(parts) != 3 or not parts[0].endswith("_task"):
            continue
        folder = f"{parts[0]}/{parts[1]}/"
        if folder != key:
            if question is not None:
                yield key, question  # type: ignore[misc]
            if key is not None and not key < folder:
                raise ValueError(f"source list not in path order: {source['path']!r} after {key!r}")
            key, question = folder, (parts[0][: -len("_task")], parts[1], {})
        question[2][PARTS.get(parts[2], parts[2])] = f"{source['size']}:{source['sha256']}"  # type: ignore[index]
    if question is not None:
        yield key, question  # type: ignore[misc]


def diff_manifests(old: ReleaseManifest, new: ReleaseManifest, *, old_file: Path | None = None,
                   new_file: Path | None = None) -> ReleaseDiff:
    """The difference between two release manifests. A manifest read without its source list
    (``load_release(..., sources=False)``) has it streamed from its file, given as ``old_file`` or
    ``new_file`` (:func:`~vmeval_hf.release.release_manifest.sources_of`)."""
    return diff_sources(old["version"], sources_of(old, old_file), new["version"], sources_of(new, new_file))


def diff_sources(old: str, old_sources: Iterable[FileEntry], new: str,
                 new_sources: Iterable[FileEntry]) -> ReleaseDiff:
    """The difference between the source lists of versions ``old`` and ``new``, both in path
    order (as a release manifest lists them): walked side by side, a question at a time, so two
    lists of any length take the memory of the questions that differ."""
    result = ReleaseDiff(old, new)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"added": 0, "removed": 0, "changed": 0,
                                                             "unchanged": 0})
    order = list(PARTS.values())
    before, after = _questions(old_sources), _questions(new_sources)
    was, now = next(before, None), next(after, None)
    while was is not None or now is not None:
        if now is None or (was is not None and was[0] < now[0]):
            domain, qid, _ = was[1]  # type: ignore[index]
            result.removed.append(qid)
            counts[domain]["removed"] += 1
            was = next(before, None)
        elif was is None or now[0] < was[0]:
            domain, qid, _ = now[1]
            result.added.append(qid)
            counts[domain]["added"] += 1
            now = next(after, None)
        else:
            (_, _, a), (domain, qid, b) = was[1], now[1]
            parts = sorted((p for p in a.keys() | b.keys() if a.get(p) != b.get(p)),
                           key=lambda p: (order.index(p) if p in order else len(order), p))
            if parts:
                result.changed[qid] = parts
            counts[domain]["changed" if parts else "unchanged"] += 1
            was, now = next(before, None), next(after, None)
    result.added.sort(key=id_sort_key)
    result.removed.sort(key=id_sort_key)
    result.changed = {qid: result.changed[qid] for qid in sorted(result.changed, key=id_sort_key)}
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
    #: the file ``previous`` was read from, when it was read without its source list
    previous_file: Path | None = None

    def changes(self, version: str, sources: Iterable[FileEntry]) -> ReleaseDiff | None:
        """What ``version`` (its ``sources``, in path order) changes since the previous version;
        None without one."""
        if self.previous is None:
            return None
        return diff_sources(self.previous["version"], sources_of(self.previous, self.previous_file), version,
                            sources)

    def rows(self, version: str, questions: int, content: str, sources: Iterable[FileEntry]) -> list[dict[str, str]]:
        """The table's rows, every cell as text; ``sources``: this version's source list (read only
        when there is a predecessor to diff against)."""
        diff = self.changes(version, sources)
        changes = diff.counts() if diff is not None else None
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
