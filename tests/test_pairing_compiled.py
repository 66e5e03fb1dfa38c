"""The compiled common path of pair_gene (bsm_data/csrc/pair.c) against the Python reference:
same samples and rejects, in the same order, and the same counts, for real and synthetic genes."""
import json
import pickle
import random
from pathlib import Path

import pytest

from bsm_data import pairing
from bsm_data.accounting import Accounting
from bsm_data.genbank import extract_genbank
from bsm_data.records import GeneSequences, Sample
from bsm_data.vocab import load_vocab

gbfast = pytest.importorskip("bsm_data._gbfast")

ROOT = Path(__file__).resolve().parents[1]
REFSEQ = ["NC_000866_phageT4.gbff", "NC_000902_phageVT2.gbk", "NZ_LAEX_mycoplasma_mycoides.gbff", "NC_000932.gb",
          "NC_005816.gb"]
OTHER = ["arab1.gb", "cor6_6.gb", "emboss_gbinv1.gb", "emboss_gbpri1_human_noHLA.gb", "augustus_dmel_genes.gb"]


@pytest.fixture(scope="module")
def vocab():
    return load_vocab()


@pytest.fixture(scope="module")
def real_genes():
    genes = []
    for name in REFSEQ + OTHER:
        genes += [x for x in extract_genbank(str(ROOT / "data" / "genbank" / name), Accounting())
                  if isinstance(x, GeneSequences)]
    return genes


def run(genes, vocab, compiled, **kw):
    """Per gene outputs and accounting, one Accounting for all, through either path."""
    saved = pairing._pair_common
    pairing._pair_common = saved if compiled else None
    try:
        acct = Accounting()
        out = [pairing.pair_gene(g, vocab, acct, **kw) for g in genes]
    finally:
        pairing._pair_common = saved
    return out, json.dumps(list(acct.to_dict().items()))


def assert_same(genes, vocab, **kw):
    (py, py_acct), (c, c_acct) = run(genes, vocab, False, **kw), run(genes, vocab, True, **kw)
    for g, a, b in zip(genes, py, c):
        assert len(a) == len(b), (g.group_id, kw)
        for x, y in zip(a, b):
            assert type(x) is type(y) and x == y and pickle.dumps(x) == pickle.dumps(y), (g.group_id, kw)
    assert py_acct == c_acct, kw


def synthetic(n, rnd):
    def seq(alpha):
        p = rnd.random()
        if p < 0.15:
            return None
        if p < 0.2:
            return ""
        L = rnd.choice([1, 2, 7, 8, 9, 63, 64, 65, 200, 1017, 1018, 1019, 1020, 1021, 1024, 1025, 3000,
                        rnd.randint(1, 5000)])
        s = "".join(rnd.choice(alpha) for _ in range(L))
        q = rnd.random()
        if q < 0.05:
            s = s[: L // 2] + rnd.choice("*-1 .\x00") + s[L // 2:]
        elif q < 0.1:
            s = s.lower()
        elif q < 0.13:
            s = "N" * L
        elif q < 0.16:
            s = s[: L // 3] + "N" * (L // 3) + s[2 * L // 3:]
        elif q < 0.18:
            s += "é"
        elif q < 0.45:  # letters that normalize to themselves (the copy-free path)
            s = s.upper().replace("J", "L").replace("T", "C")
        return s

    return [GeneSequences(f"syn:{i}" + ("é" if i % 7 == 0 else ""), "syn", "syn.gb", "CDS",
                          dna=seq("ACGT" * 12 + "NRYKMSWBDHVacgtn"), rna=seq("ACGU" * 10 + "TNacgu"),
                          protein=seq("ACDEFGHIKLMNPQRSTVWY" * 3 + "XJBZUOacdefg"))
            for i in range(n)]


@pytest.mark.parametrize("seq_len,seed,min_slice,source", [
    (1024, 0, 64, "refseq"), (256, 7, 8, "gene"), (64, 0, 8, "refseq"), (256, 0, 64, "refseq"),
])
def test_real_genes_match_python(real_genes, vocab, seq_len, seed, min_slice, source):
    assert_same(real_genes, vocab, seed=seed, seq_len=seq_len, min_slice=min_slice, source=source)


@pytest.mark.parametrize("seq_len,seed,min_slice", [(1024, 0, 64), (256, 7, 8), (64, 3, 1), (12, 0, 0)])
def test_synthetic_genes_match_python(vocab, seq_len, seed, min_slice):
    genes = synthetic(400, random.Random(seq_len * 31 + seed))
    assert_same(genes, vocab, seed=seed, seq_len=seq_len, min_slice=min_slice)


def test_most_genes_take_the_compiled_path(real_genes, vocab):
    ctx = pairing.compiled_context(vocab)
    hits = sum(gbfast.pair_common(g, ctx, 0, 1024, 64, "refseq", Sample) is not None for g in real_genes)
    assert hits >= 0.9 * len(real_genes)
    syn = synthetic(400, random.Random(5))  # the synthetic comparisons exercise both paths
    hits = sum(gbfast.pair_common(g, ctx, 0, 1024, 64, "refseq", Sample) is not None for g in syn)
    assert 0.1 * len(syn) <= hits <= 0.9 * len(syn)


def test_choice_and_shuffle_are_uniform():
    """pair_draws' combination and modality order: every outcome about equally often."""
    from collections import Counter

    combos = [("dna", "rna"), ("dna", "protein"), ("rna", "protein"), ("dna", "rna", "protein")]
    seen = Counter(tuple(pairing.choose_and_shuffle(pairing.pair_draws(0, f"g{i}"), combos)) for i in range(24000))
    # 3 pairs x 2 orders + 6 orders of the triple = 12 outcomes, each with probability 1/8 or 1/24
    assert len(seen) == 12
    for outcome, n in seen.items():
        expected = 24000 / 8 if len(outcome) == 2 else 24000 / 24
        assert abs(n - expected) < 5 * expected ** 0.5, (outcome, n, expected)


def test_sample_is_what_pair_c_fills():
    """pair.c sets Sample's fields one by one (as the frozen dataclass __init__ does): a new field or
    a __post_init__ on Sample must be mirrored there first."""
    import dataclasses

    assert [f.name for f in dataclasses.fields(Sample)] == [
        "sample_id", "source", "group_id", "window", "n_windows", "segments", "n_tokens", "source_file", "record_id",
    ]
    assert not hasattr(Sample, "__post_init__")
