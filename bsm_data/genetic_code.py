"""Vectorised translation with the NCBI genetic codes.

The tables come from ``Bio.Data.CodonTable`` (the NCBI ``gc.prt`` codes), turned once into
numpy lookup arrays so that all the CDS of a record are translated in one call instead of a
Python loop per codon.

Ambiguity: every byte maps to one of 17 classes (A, C, G, T/U, the 11 IUPAC ambiguity codes,
and "other"). A codon of classes translates to an amino acid when every concrete codon it
stands for gives that same amino acid (``CTN`` -> L, ``TAR`` -> *), else to X, which is what
NCBI writes in /translation. Codons with gaps, digits or other bytes become X; nothing is
dropped.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from Bio.Data import CodonTable
from Bio.Data.IUPACData import protein_letters_3to1_extended

_BASES = "ACGT"
# IUPAC nucleotide codes and the concrete bases each stands for; class 16 = anything else.
_CLASSES = {
    "A": "A", "C": "C", "G": "G", "T": "T",
    "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
    "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT",
}
_OTHER = len(_CLASSES)  # 15
_NCLS = _OTHER + 1  # 16

# byte -> class, upper and lower case, U read as T.
BYTE_CLASS = np.full(256, _OTHER, dtype=np.uint8)
for _i, _code in enumerate(_CLASSES):
    BYTE_CLASS[ord(_code)] = _i
    BYTE_CLASS[ord(_code.lower())] = _i
BYTE_CLASS[ord("U")] = BYTE_CLASS[ord("T")]
BYTE_CLASS[ord("u")] = BYTE_CLASS[ord("T")]
# The same map for bytes.translate, which is several times faster than a numpy gather.
_CLASS_TRANS = BYTE_CLASS.tobytes()

# class x concrete base membership, shape (16, 4)
_MEMBER = np.zeros((_NCLS, 4), dtype=bool)
for _i, _bases in enumerate(_CLASSES.values()):
    for _b in _bases:
        _MEMBER[_i, _BASES.index(_b)] = True

# (16^3 class triples) x (64 concrete codons): which concrete codons each triple stands for.
_COVER = (
    _MEMBER[:, None, None, :, None, None]
    & _MEMBER[None, :, None, None, :, None]
    & _MEMBER[None, None, :, None, None, :]
).reshape(_NCLS**3, 64)
_ANY = _COVER.any(axis=1)

TABLE_IDS = tuple(sorted(CodonTable.unambiguous_dna_by_id))

THREE_TO_ONE = {k.upper(): v for k, v in protein_letters_3to1_extended.items()}
THREE_TO_ONE.update({"TERM": "*", "STOP": "*", "OTHER": "X"})


class UnknownTable(ValueError):
    pass


def _concrete_codons() -> list[str]:
    return [a + b + c for a in _BASES for b in _BASES for c in _BASES]


@lru_cache(maxsize=None)
def codon_lookup(table_id: int) -> np.ndarray:
    """uint8 array indexed by ``c1*256 + c2*16 + c3`` (byte classes) -> amino-acid letter."""
    try:
        table = CodonTable.unambiguous_dna_by_id[table_id]
    except KeyError:
        raise UnknownTable(f"unknown genetic code /transl_table={table_id}") from None
    # Codons that are both stop and sense (tables 27, 28, 31) read as sense, like Biopython
    # and like the internal codons of NCBI /translation.
    aa64 = np.array(
        [ord(table.forward_table.get(c, "*")) for c in _concrete_codons()],
        dtype=np.uint8,
    )
    lo = np.where(_COVER, aa64, 255).min(axis=1)
    hi = np.where(_COVER, aa64, 0).max(axis=1)
    return np.where(_ANY & (lo == hi), lo, ord("X")).astype(np.uint8)


@lru_cache(maxsize=None)
def start_codons(table_id: int) -> frozenset[bytes]:
    """Start codons of a table, upper-case DNA bytes (NCBI: these are read as M at a 5' end)."""
    return frozenset(c.encode() for c in CodonTable.unambiguous_dna_by_id[table_id].start_codons)


def translate_many(seqs: list[bytes], table_id: int) -> list[str]:
    """Translate each sequence codon by codon (frame 0), all in one vectorised lookup.

    A trailing incomplete codon is padded with N and kept only when it is still unambiguous
    (NCBI does the same for 3'-partial CDS); stops are kept as ``*``.
    """
    if not seqs:
        return []
    lookup = codon_lookup(table_id)
    padded = [s + b"N" * (-len(s) % 3) if len(s) % 3 else s for s in seqs]
    cls = np.frombuffer(b"".join(padded).translate(_CLASS_TRANS), dtype=np.uint8)
    # codon index = c1<<8 | c2<<4 | c3, built in place to avoid large temporaries
    idx = cls[0::3].astype(np.uint16)
    idx <<= 4
    idx |= cls[1::3]
    idx <<= 4
    idx |= cls[2::3]
    aa = lookup.take(idx).tobytes().decode("ascii")
    out, pos = [], 0
    for s, p in zip(seqs, padded):
        end = pos + len(p) // 3
        prot = aa[pos:end]
        pos = end
        if p is not s and prot.endswith("X"):
            prot = prot[:-1]
        out.append(prot)
    return out


def translate(seq: bytes, table_id: int = 1) -> str:
    return translate_many([seq], table_id)[0]
