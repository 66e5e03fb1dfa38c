"""Per-stage counters that must reconcile: records in = records out + records rejected.

Every stage of every pipeline keeps one ``StageCounts``. ``Accounting`` holds them by name,
merges partial counts from parallel workers and is stored verbatim in the manifest.
"""
from __future__ import annotations

from collections import Counter

from .records import Reject


class ReconciliationError(RuntimeError):
    pass


class StageCounts:
    def __init__(self, stage: str):
        self.stage = stage
        self.n_in = 0
        self.n_out = 0
        self.rejected: Counter[str] = Counter()
        # informational counters that are not part of in/out (e.g. "translation_mismatch")
        self.notes: Counter[str] = Counter()

    def take(self, n: int = 1) -> None:
        self.n_in += n

    def emit(self, n: int = 1) -> None:
        self.n_out += n

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n

    def note(self, key: str, n: int = 1) -> None:
        self.notes[key] += n

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def check(self) -> None:
        if self.n_in != self.n_out + self.n_rejected:
            raise ReconciliationError(
                f"stage {self.stage!r} does not reconcile: in={self.n_in} "
                f"out={self.n_out} rejected={self.n_rejected} ({dict(self.rejected)})"
            )

    def to_dict(self) -> dict:
        return {
            "in": self.n_in,
            "out": self.n_out,
            "rejected": dict(sorted(self.rejected.items())),
            "notes": dict(sorted(self.notes.items())),
        }

    @classmethod
    def from_dict(cls, stage: str, d: dict) -> "StageCounts":
        s = cls(stage)
        s.n_in, s.n_out = d["in"], d["out"]
        s.rejected.update(d.get("rejected", {}))
        s.notes.update(d.get("notes", {}))
        return s

    def merge(self, other: "StageCounts") -> None:
        self.n_in += other.n_in
        self.n_out += other.n_out
        self.rejected.update(other.rejected)
        self.notes.update(other.notes)


class Accounting:
    """Named stages in insertion order. Safe to merge across workers (pure addition)."""

    def __init__(self) -> None:
        self.stages: dict[str, StageCounts] = {}

    def stage(self, name: str) -> StageCounts:
        if name not in self.stages:
            self.stages[name] = StageCounts(name)
        return self.stages[name]

    def reject(
        self,
        stage: str,
        reason: str,
        *,
        detail: str = "",
        source: str = "",
        source_file: str = "",
        record_id: str = "",
        item_id: str = "",
    ) -> Reject:
        """Count a reject in ``stage`` and return the Reject row the caller must emit."""
        self.stage(stage).reject(reason)
        return Reject(stage, reason, detail, source, source_file, record_id, item_id)

    def merge(self, other: "Accounting") -> "Accounting":
        for name, counts in other.stages.items():
            self.stage(name).merge(counts)
        return self

    def check(self) -> None:
        for counts in self.stages.values():
            counts.check()

    def to_dict(self) -> dict:
        return {name: counts.to_dict() for name, counts in self.stages.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Accounting":
        acct = cls()
        for name, counts in d.items():
            acct.stages[name] = StageCounts.from_dict(name, counts)
        return acct

    def table(self) -> str:
        """A fixed-width summary for the terminal."""
        lines = [f"{'stage':<12}{'in':>10}{'out':>10}{'rejected':>10}  reasons"]
        for name, c in self.stages.items():
            reasons = ", ".join(f"{r}={n}" for r, n in sorted(c.rejected.items()))
            lines.append(f"{name:<12}{c.n_in:>10}{c.n_out:>10}{c.n_rejected:>10}  {reasons}")
        return "\n".join(lines)
