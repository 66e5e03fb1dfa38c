import random

import numpy as np
import pytest

from bsm_data.accounting import Accounting
from bsm_data.packing import assign_rows, pack
from bsm_data.pairing import pair_gene, short_tail, window_bounds, windowable
from bsm_data.records import GeneSequences, Reject, Sample
from bsm_data.vocab import decode_sample, encode_sample, load_vocab

from .conftest import read_fasta


def real_gene(data_dir, i=0, dna_repeat=1):
    """A gene assembled from NCBI's own derived files for NC_005816 (CDS .ffn and protein .faa)."""
    cds = read_fasta(data_dir / "genbank" / "NC_005816.ffn")[i][1]
    prot = read_fasta(data_dir / "genbank" / "NC_005816.faa")[i][1]
    return GeneSequences(
        group_id=f"NC_005816.1:g{i}", record_id="NC_005816.1", source_file="NC_005816.gb", kind="CDS",
        dna=cds * dna_repeat, rna=cds.replace("T", "U"), protein=prot, cds=cds,
    )


def test_pairs_are_cross_modal_shuffled_and_seeded(data_dir):
    vocab = load_vocab()
    combos, orders = set(), set()
    for i in range(10):
        gene = real_gene(data_dir, i)
        a = pair_gene(gene, vocab, Accounting(), seed=1)
        b = pair_gene(gene, vocab, Accounting(), seed=1)
        assert a == b  # seeded per gene
        for s in a:
            assert isinstance(s, Sample)
            mods = [m for m, _ in s.segments]
            assert len(set(mods)) == len(mods) >= 2
            combos.add(frozenset(mods))
            orders.add(tuple(mods))
    assert len(combos) >= 2 and len(orders) >= 3  # combinations and orders both vary


def test_seed_changes_choices(data_dir):
    vocab = load_vocab()
    gene = real_gene(data_dir, 3)
    outs = {tuple(m for m, _ in pair_gene(gene, vocab, Accounting(), seed=s)[0].segments) for s in range(20)}
    assert len(outs) > 2


def test_long_pairs_are_windowed_with_every_modality_in_every_window(data_dir):
    vocab = load_vocab()
    gene = real_gene(data_dir, 0, dna_repeat=1)  # ~1 kb CDS: dna+rna+protein > 1024 tokens
    acct = Accounting()
    samples = [s for s in pair_gene(gene, vocab, acct, seed=0, seq_len=512) if isinstance(s, Sample)]
    n = samples[0].n_windows
    assert n > 1 and len(samples) == n
    order = [m for m, _ in samples[0].segments]
    for w, s in enumerate(samples):
        assert s.window == w and [m for m, _ in s.segments] == order
        assert s.n_tokens <= 512
        assert len(encode_sample(vocab, s.segments)) == s.n_tokens
    # windows cover each segment exactly, in order, without overlap
    for k, m in enumerate(order):
        full = {"dna": gene.dna, "rna": gene.rna, "protein": gene.protein}[m]
        assert "".join(s.segments[k][1] for s in samples) == full
    # all windows but the tail are (nearly) full: they fill rows
    assert all(s.n_tokens >= 512 - 8 * len(order) * 3 for s in samples[:-1])
    acct.check()
    assert acct.stage("pair").notes["windowed_genes"] == 1


def test_unwindowable_combination_is_avoided_or_rejected():
    vocab = load_vocab()
    # a huge DNA span against a short protein cannot be windowed (slices of a few residues)
    gene = GeneSequences("r:g", "r", "f.gb", "CDS", dna="ACGT" * 50000, rna=None, protein="MKV" * 20)
    acct = Accounting()
    out = pair_gene(gene, vocab, acct, seed=0)
    assert len(out) == 1 and isinstance(out[0], Reject) and out[0].reason == "unpairable_lengths"
    acct.check()


def test_invalid_modality_is_rejected_and_gene_continues(data_dir):
    vocab = load_vocab()
    gene = real_gene(data_dir, 1)
    gene.protein = gene.protein[:10] + "*" + gene.protein[11:]
    acct = Accounting()
    out = pair_gene(gene, vocab, acct, seed=0)
    rejects = [r for r in out if isinstance(r, Reject)]
    assert [r.reason for r in rejects] == ["illegal_letter"] and rejects[0].item_id.endswith(":protein")
    assert all({m for m, _ in s.segments} == {"dna", "rna"} for s in out if isinstance(s, Sample))
    acct.check()
    gene.rna = None
    acct = Accounting()
    out = pair_gene(gene, vocab, acct, seed=0)
    assert {r.reason for r in out} == {"illegal_letter", "single_modality"}
    acct.check()


def test_window_bounds_fit_cover_and_respect_min_slice():
    for lengths in ([500, 500], [3000, 1000, 333], [10, 10, 10], [1010, 3], [5000, 1700, 560], [2100, 700], [1100, 370], [2060, 690]):
        windows = window_bounds(lengths, 1024, 64)
        if windows is None:
            assert min(lengths) * (1024 - 2 - 2 * len(lengths) + 1 - len(lengths)) // sum(lengths) < 64
            continue
        for w in windows:
            assert sum(b - a for a, b in w) + 2 + 2 * len(lengths) - 1 <= 1024
        for w in windows[:-1] if len(windows) > 1 else []:
            assert min(b - a for a, b in w) >= 64 - 8  # full windows (the last may lend a tail 8 residues)
        if len(windows) > 1:
            assert min(b - a for a, b in windows[-1]) >= 8  # the tail: a short aligned fragment
        for j, n in enumerate(lengths):
            assert windows[0][j][0] == 0 and windows[-1][j][1] == n
            for prev, nxt in zip(windows, windows[1:]):
                assert nxt[j][0] == prev[j][1]  # no gap, no overlap


def test_windowable_and_short_tail_agree_with_window_bounds():
    """pair_gene filters candidates with ``windowable`` and notes ``grown_tail`` with ``short_tail``:
    both must say exactly what ``window_bounds`` does (checked against per-segment definitions)."""
    rng = random.Random(0)
    for _ in range(3000):
        lengths = [rng.choice([rng.randint(1, 40), rng.randint(1, 3000), rng.randint(1, 100000)]) for _ in range(rng.choice([2, 3]))]
        seq_len, min_slice = rng.choice([1024, 512, 64]), rng.choice([8, 64])
        windows = window_bounds(lengths, seq_len, min_slice)
        assert windowable(lengths, seq_len, min_slice) == (windows is not None)
        k, total = len(lengths), sum(lengths)
        budget = seq_len - (2 * k + 1) - k
        fits = total + 2 * k + 1 <= seq_len
        assert (windows is not None) == (fits or min(n * budget // total for n in lengths) >= min_slice)
        cut = total // budget * budget
        assert short_tail(lengths, seq_len) == (0 < cut < total and min(n - n * cut // total for n in lengths) < 8)


def test_best_fit_packing_is_order_independent_and_keeps_documents_whole():
    rng = random.Random(0)
    docs = [(f"s{i}", np.full(rng.randint(5, 1024), i % 60 + 1, dtype=np.uint8)) for i in range(400)]
    a = pack(docs, 1024, seed=7)
    shuffled = docs[:]
    rng.shuffle(shuffled)
    b = pack(shuffled, 1024, seed=7)
    ids = lambda rows, d: [[d[i][0] for i in r] for r in rows.doc_index]  # noqa: E731
    assert np.array_equal(a.tokens, b.tokens) and ids(a, docs) == ids(b, shuffled)
    by_id = dict(docs)
    seen = set()
    for r in range(a.n_rows):
        starts = a.doc_starts[r] + [int(a.n_tokens[r])]
        for k, sid in enumerate(ids(a, docs)[r]):
            assert np.array_equal(a.tokens[r, starts[k] : starts[k + 1]], by_id[sid])
            seen.add(sid)
        assert not a.tokens[r, a.n_tokens[r] :].any()  # pad after the last document
    assert seen == set(by_id)
    assert a.n_documents == len(docs)


def test_best_fit_beats_one_document_per_row():
    lengths = [900, 100, 500, 500, 1024, 24, 1000]
    rows = assign_rows(lengths, [str(i) for i in range(len(lengths))], 1024)
    assert len(rows) == 4
    with pytest.raises(ValueError, match="seq_len"):
        assign_rows([1025], ["x"], 1024)


def test_decode_recovers_packed_documents(data_dir):
    vocab = load_vocab()
    samples = [s for i in range(10) for s in pair_gene(real_gene(data_dir, i), vocab, Accounting(), seed=0)]
    rows = pack([(s.sample_id, encode_sample(vocab, s.segments)) for s in samples], 1024, seed=0)
    for r in range(rows.n_rows):
        for start, i in zip(rows.doc_starts[r], rows.doc_index[r]):
            assert tuple(decode_sample(vocab, rows.tokens[r, start:])) == samples[i].segments
