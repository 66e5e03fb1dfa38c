"""In-memory forms of the on-disk contracts in ``schemas/``.

Extraction yields ``GeneSequences`` (one gene, up to three modalities) and ``Reject``
(anything that could not be used, with a reason). Writers turn them into Arrow rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MODALITIES = ("dna", "rna", "protein")


@dataclass(frozen=True)
class Reject:
    """One unit of input that was not used, and why. Never dropped silently."""

    stage: str  # parse | extract | tokenize | pair | pack | ...
    reason: str  # short machine-readable reason, e.g. "pseudo", "external_reference"
    detail: str  # human-readable explanation (location text, bad letters, parser error)
    source: str  # dataset source name, e.g. "refseq"
    source_file: str
    record_id: str  # accession.version of the record, "" when unknown
    item_id: str  # feature / sample identifier inside the record, "" for whole records

    def as_row(self) -> dict:
        return {
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
            "source": self.source,
            "source_file": self.source_file,
            "record_id": self.record_id,
            "item_id": self.item_id,
        }


@dataclass
class GeneSequences:
    """The sequences of one gene: genomic DNA span, spliced RNA and protein.

    All strings are upper case and 5'->3' on the gene's strand. ``rna`` uses U.
    Missing modalities are None (a tRNA gene has no protein).
    """

    group_id: str  # stable unique key: "<record_id>:<gene key>"
    record_id: str
    source_file: str
    kind: str  # feature kind that anchors the gene: CDS, tRNA, rRNA, ncRNA, ...
    dna: str | None
    rna: str | None
    protein: str | None
    cds: str | None = None  # spliced coding DNA (T alphabet), for checks against NCBI .ffn
    attributes: dict = field(default_factory=dict)

    def modalities(self) -> dict[str, str]:
        """The present, non-empty modalities in canonical order."""
        present = {"dna": self.dna, "rna": self.rna, "protein": self.protein}
        return {m: s for m, s in present.items() if s}


@dataclass(frozen=True)
class Sample:
    """One training document before packing (schema ``sample``)."""

    sample_id: str
    source: str
    group_id: str
    window: int
    n_windows: int
    segments: tuple[tuple[str, str], ...]  # (modality, sequence) in training order
    n_tokens: int
    source_file: str
    record_id: str

    def as_row(self) -> dict:
        return {
            "sample_id": self.sample_id,
            "source": self.source,
            "group_id": self.group_id,
            "window": self.window,
            "n_windows": self.n_windows,
            "segments": [{"modality": m, "sequence": s} for m, s in self.segments],
            "n_tokens": self.n_tokens,
            "source_file": self.source_file,
            "record_id": self.record_id,
        }

    @classmethod
    def from_row(cls, row: dict) -> "Sample":
        return cls(
            sample_id=row["sample_id"],
            source=row["source"],
            group_id=row["group_id"],
            window=row["window"],
            n_windows=row["n_windows"],
            segments=tuple((s["modality"], s["sequence"]) for s in row["segments"]),
            n_tokens=row["n_tokens"],
            source_file=row["source_file"],
            record_id=row["record_id"],
        )
