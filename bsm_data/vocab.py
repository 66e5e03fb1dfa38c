"""The vocabulary contract between data and model, and the tokenizer.

One token per nucleotide or amino acid; nucleotide and amino-acid letters get different ids.
The file ``schemas/vocab.v1.json`` is the source of truth: ids, alphabets and the policy for
ambiguity codes and illegal letters all come from it, so data and model can never disagree.

Encoding policy (also written in the vocabulary file):
- case is folded (lower-case soft-masking is not kept);
- DNA/RNA IUPAC ambiguity codes R Y S W K M B D H V, and X, become N; protein J becomes X;
- in RNA segments T is read as U (RNA databases often store RNA in the DNA alphabet);
- any other character (digits, ``*``, gaps, whitespace, non-ASCII) rejects the sequence with
  reason ``illegal_letter``; more than ``max_ambiguous_fraction`` N/X rejects it with reason
  ``too_ambiguous``; an empty sequence is ``empty_sequence``.
A sample is ``<bos> <tag> seq (<sep> <tag> seq)* <eos>``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .records import MODALITIES
from .schemas import schema_dir

ILLEGAL = 255  # sentinel in the lookup tables; never a token id (size < 255)


class TokenizeError(ValueError):
    """A sequence the vocabulary policy rejects. ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Vocab:
    name: str
    version: int
    size: int
    sha256: str
    tokens: tuple[dict, ...]
    max_ambiguous_fraction: float
    id_of: dict[str, int] = field(repr=False)
    luts: dict[str, np.ndarray] = field(repr=False)  # modality -> 256-entry byte -> id table
    ambiguous_id: dict[str, int] = field(repr=False)  # modality -> id of N / X
    letter_of_id: np.ndarray = field(repr=False)  # id -> ASCII letter (upper case), 0 for specials
    # modality -> bytes.translate table: byte -> the letter the model sees, 0 for illegal bytes
    letter_tables: dict[str, bytes] = field(default_factory=dict, repr=False)
    ambiguous_letter: dict[str, int] = field(default_factory=dict, repr=False)  # modality -> ord("N") / ord("X")

    @property
    def pad(self) -> int:
        return self.id_of["<pad>"]

    @property
    def bos(self) -> int:
        return self.id_of["<bos>"]

    @property
    def eos(self) -> int:
        return self.id_of["<eos>"]

    @property
    def sep(self) -> int:
        return self.id_of["<sep>"]

    def tag(self, modality: str) -> int:
        return self.id_of[f"<{modality}>"]

    @property
    def protein_ids(self) -> np.ndarray:
        return np.array([t["id"] for t in self.tokens if t["kind"] == "amino_acid"], dtype=np.uint8)

    def modality_of_tag(self) -> dict[int, str]:
        return {self.tag(m): m for m in MODALITIES}

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "size": self.size, "sha256": self.sha256}


def _build_lut(tokens: dict[str, int], letters: str, mapped: dict[str, str]) -> np.ndarray:
    lut = np.full(256, ILLEGAL, dtype=np.uint8)
    for letter in letters:
        lut[ord(letter)] = lut[ord(letter.lower())] = tokens[letter]
    for src, dst in mapped.items():
        lut[ord(src)] = lut[ord(src.lower())] = tokens[dst]
    return lut


@lru_cache(maxsize=None)
def load_vocab(path: str | None = None) -> Vocab:
    p = Path(path) if path else schema_dir() / "vocab.v1.json"
    raw = p.read_bytes()
    spec = json.loads(raw)
    tokens = tuple(spec["tokens"])
    if [t["id"] for t in tokens] != list(range(spec["size"])) or spec["size"] >= ILLEGAL:
        raise ValueError(f"{p}: token ids must be 0..size-1 and size < {ILLEGAL}")
    id_of = {t["token"]: t["id"] for t in tokens}
    nuc = {t["letter"]: t["id"] for t in tokens if t["kind"] == "nucleotide"}
    aa = {t["letter"]: t["id"] for t in tokens if t["kind"] == "amino_acid"}
    alph = spec["alphabets"]
    luts = {}
    for m, table in (("dna", nuc), ("rna", nuc), ("protein", aa)):
        a = alph[m]
        mapped = {c: "N" for c in a.get("map_to_N", "")}
        mapped.update({c: "X" for c in a.get("map_to_X", "")})
        if a.get("T_to_U"):
            mapped["T"] = "U"
        luts[m] = _build_lut(table, a["letters"], mapped)
    letter_of_id = np.zeros(spec["size"], dtype=np.uint8)
    for t in tokens:
        if "letter" in t:
            letter_of_id[t["id"]] = ord(t["letter"])
    ambiguous_id = {"dna": nuc["N"], "rna": nuc["N"], "protein": aa["X"]}
    return Vocab(
        name=spec["name"],
        version=spec["version"],
        size=spec["size"],
        sha256=hashlib.sha256(raw).hexdigest(),
        tokens=tokens,
        max_ambiguous_fraction=spec["reject_policy"]["max_ambiguous_fraction"],
        id_of=id_of,
        luts=luts,
        ambiguous_id=ambiguous_id,
        letter_of_id=letter_of_id,
        letter_tables={m: np.where(lut == ILLEGAL, 0, letter_of_id[np.minimum(lut, spec["size"] - 1)])
                       .astype(np.uint8).tobytes() for m, lut in luts.items()},
        ambiguous_letter={m: int(letter_of_id[i]) for m, i in ambiguous_id.items()},
    )


def map_letters(vocab: Vocab, modality: str, seq: str | bytes) -> np.ndarray:
    """Token ids (uint8) of one sequence under the letter policy. Raises TokenizeError."""
    if not seq:
        raise TokenizeError("empty_sequence", f"empty {modality} sequence")
    if isinstance(seq, str):
        try:
            seq = seq.encode("ascii")
        except UnicodeEncodeError as e:
            raise TokenizeError("illegal_letter", f"non-ASCII character {seq[e.start]!r}") from None
    ids = vocab.luts[modality][np.frombuffer(seq, dtype=np.uint8)]
    if ids.max() == ILLEGAL:  # ILLEGAL is above every id: one pass to detect, a second only to explain
        bad = ids == ILLEGAL
        letters = sorted(set(bytes(np.frombuffer(seq, dtype=np.uint8)[bad]).decode("ascii")))
        raise TokenizeError(
            "illegal_letter",
            f"{int(bad.sum())} illegal {modality} letter(s) {''.join(letters)!r}, first at {int(bad.argmax())}",
        )
    return ids


def encode_sequence(vocab: Vocab, modality: str, seq: str | bytes) -> np.ndarray:
    """Validate a whole sequence (letters and ambiguity) and return its ids. Raises TokenizeError.

    Ambiguity is judged on the whole sequence: a window cut from a valid sequence is not
    judged again (a window may fall on an N-run of an otherwise good sequence).
    """
    ids = map_letters(vocab, modality, seq)
    n_amb = int(np.count_nonzero(ids == vocab.ambiguous_id[modality]))
    if n_amb > vocab.max_ambiguous_fraction * len(ids):
        raise TokenizeError("too_ambiguous", f"{n_amb}/{len(ids)} ambiguous {modality} letters")
    return ids


def normalize(vocab: Vocab, modality: str, seq: str) -> str:
    """The sequence exactly as the model sees it (upper case, ambiguity codes mapped, RNA in U).

    Validates like ``encode_sequence``. Samples store this form, so a sample decodes back from
    its tokens letter for letter."""
    if type(seq) is str and seq.isascii():  # the common case, with two C-speed byte passes
        letters = seq.encode("ascii").translate(vocab.letter_tables[modality])
        if letters and b"\0" not in letters:
            ambiguous = letters.count(vocab.ambiguous_letter[modality])
            if not ambiguous > vocab.max_ambiguous_fraction * len(letters):
                return letters.decode("ascii")
    # anything else, including every sequence that is rejected, by the token path and its errors
    return bytes(vocab.letter_of_id[encode_sequence(vocab, modality, seq)]).decode("ascii")


def sample_overhead(n_segments: int) -> int:
    """Special tokens in a sample: bos, eos, one tag per segment, seps between segments."""
    return 2 + n_segments + (n_segments - 1)


def encode_sample(vocab: Vocab, segments) -> np.ndarray:
    """``segments`` is a sequence of (modality, sequence) pairs of validated sequences (or
    windows of them); returns the document's ids. Illegal letters still raise."""
    out = np.empty(sample_overhead(len(segments)) + sum(len(s) for _, s in segments), dtype=np.uint8)
    out[0], pos = vocab.bos, 1
    for i, (modality, seq) in enumerate(segments):
        if i:
            out[pos], pos = vocab.sep, pos + 1
        out[pos], pos = vocab.tag(modality), pos + 1
        ids = map_letters(vocab, modality, seq)
        out[pos : pos + len(ids)], pos = ids, pos + len(ids)
    out[pos] = vocab.eos
    return out


def decode_sample(vocab: Vocab, ids) -> list[tuple[str, str]]:
    """Inverse of encode_sample for one document (stops at <eos>; <pad> is skipped).

    ``ids`` may be an array or the raw bytes of a packed row's ``tokens`` value."""
    ids = np.frombuffer(ids, dtype=np.uint8) if isinstance(ids, (bytes, bytearray, memoryview)) else np.asarray(ids, dtype=np.uint8)
    tags = vocab.modality_of_tag()
    segments: list[tuple[str, str]] = []
    start, modality = None, None

    def close(end: int) -> None:
        if modality is not None:
            segments.append((modality, bytes(vocab.letter_of_id[ids[start:end]]).decode("ascii")))

    for i, t in enumerate(ids.tolist()):
        if t in tags:
            close(i)
            modality, start = tags[t], i + 1
        elif t in (vocab.sep, vocab.eos):
            close(i)
            modality = None
            if t == vocab.eos:
                break
    else:
        close(len(ids))
    return segments


def to_text(vocab: Vocab, ids) -> str:
    """The unambiguous text form (nucleotides lower case, amino acids upper case)."""
    return "".join(vocab.tokens[i]["token"] for i in np.asarray(ids).tolist())
