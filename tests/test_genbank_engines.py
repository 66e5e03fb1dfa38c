"""The compiled GenBank path (bsm_data._gbfast) against the Python path it mirrors.

Every bundled GenBank file, plain and gzip, and mutated copies of real entries, go through
``extract_genbank`` with ``engine="python"`` (gb-io for every entry) and ``engine="compiled"``;
rows, rejects and every count must be identical. ``tests/test_genbank.py`` also runs whole
under both engines (its ``engine`` fixture).
"""
from __future__ import annotations

import gzip
import io
import os
import random
from pathlib import Path

import pytest

import bsm_data.genbank as genbank
from bsm_data.accounting import Accounting
from bsm_data.genbank import extract_genbank

if genbank._gbfast is None and os.environ.get("BSM_REQUIRE_COMPILED"):
    raise ImportError("BSM_REQUIRE_COMPILED is set but bsm_data._gbfast is not built")
pytestmark = pytest.mark.skipif(genbank._gbfast is None, reason="bsm_data._gbfast is not built (no C compiler?)")

GENBANK = Path(__file__).resolve().parents[1] / "data" / "genbank"
FILES = sorted(p for p in GENBANK.iterdir() if p.suffix not in (".faa", ".ffn"))
REFSEQ = ["NC_000866_phageT4.gbff", "NC_000902_phageVT2.gbk", "NZ_LAEX_mycoplasma_mycoides.gbff",
          "NC_000932.gb", "NC_005816.gb"]


class CountingFast:
    """Stands in for the compiled module and counts the entries it finished and sent back."""

    def __init__(self, module):
        self.module, self.done, self.returned = module, 0, 0

    def extract_entry(self, *args):
        result = self.module.extract_entry(*args)
        if result is None:
            self.returned += 1
        else:
            self.done += 1
        return result


def both(data: bytes, **kw):
    """(items, accounting) from each engine."""
    out = {}
    for engine in ("python", "compiled"):
        acct = Accounting()
        out[engine] = (list(extract_genbank(io.BytesIO(data), acct, engine=engine, **kw)), acct.to_dict())
    return out["python"], out["compiled"]


def assert_same(python, compiled):
    (p_items, p_acct), (c_items, c_acct) = python, compiled
    assert len(p_items) == len(c_items)
    for a, b in zip(p_items, c_items):
        assert a == b, (a, b)
    assert p_acct == c_acct


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("flank", [100, 0])
def test_every_bundled_file_gives_identical_rows(path, flank):
    assert_same(*both(path.read_bytes(), flank=flank))


def test_gzip_input_is_identical():
    data = b"".join((GENBANK / name).read_bytes() for name in REFSEQ)
    assert_same(*both(gzip.compress(data, 1)))


@pytest.mark.parametrize("name", REFSEQ)
def test_refseq_files_take_the_compiled_path(name, monkeypatch):
    """The RefSeq files are in the fast subset entirely: no entry falls back to gb-io."""
    counter = CountingFast(genbank._gbfast)
    monkeypatch.setattr(genbank, "_gbfast", counter)
    list(extract_genbank(GENBANK / name, Accounting(), engine="compiled"))
    assert counter.done > 0 and counter.returned == 0, (counter.done, counter.returned)


def test_mutated_entries_never_diverge():
    """Seeded single-byte mutations of real entries: whatever each engine makes of the damaged
    text (rows, rejects, a fallback to gb-io or Biopython), the two must agree."""
    rng = random.Random(7)
    entries = []
    for name in ("NC_005816.gb", "NC_000932.gb"):
        data = (GENBANK / name).read_bytes()
        entries += [data[s:e] for s, e in genbank._entries(data)]
    alphabet = b"ACGT acgt<>().,:^0123456789\n\"/=_-X"
    for trial in range(60):
        entry = bytearray(rng.choice(entries))
        for _ in range(rng.randint(1, 3)):
            entry[rng.randrange(len(entry))] = rng.choice(alphabet)
        assert_same(*both(bytes(entry)))


def _modern_locus(data: bytes) -> bytes:
    """Each entry with its LOCUS line rewritten in the modern layout (``repair_locus``), so the
    older files (mRNA/CDS pairs, isoforms, partial genes) reach the compiled path too."""
    out = []
    for s, e in genbank._entries(data):
        entry = data[s:e].lstrip()
        out.append(genbank.repair_locus(entry) or entry)
    return b"".join(out)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_older_files_with_modern_locus_lines_are_identical(path, monkeypatch):
    data = _modern_locus(path.read_bytes())
    assert_same(*both(data))
    counter = CountingFast(genbank._gbfast)
    monkeypatch.setattr(genbank, "_gbfast", counter)
    list(extract_genbank(io.BytesIO(data), Accounting(), engine="compiled"))
    # fallbacks are allowed (remote locations, transl_except, ...); report them in -rA output
    print(f"{path.name}: compiled {counter.done}, fallback {counter.returned}")


def test_without_the_module_auto_takes_the_python_path(monkeypatch):
    """An install without a C compiler: "auto" still works (Python path), "compiled" says why not."""
    data = (GENBANK / "NC_005816.gb").read_bytes()
    expected = both(data)[0]
    monkeypatch.setattr(genbank, "_gbfast", None)
    acct = Accounting()
    assert (list(extract_genbank(io.BytesIO(data), acct)), acct.to_dict()) == expected
    with pytest.raises(RuntimeError, match="not built"):
        list(extract_genbank(io.BytesIO(data), Accounting(), engine="compiled"))
    with pytest.raises(ValueError, match="engine must be"):
        list(extract_genbank(io.BytesIO(data), Accounting(), engine="rust"))
