import numpy as np
import pytest

from bsm_data.vocab import TokenizeError, decode_sample, encode_sample, encode_sequence, load_vocab, to_text

from .conftest import read_fasta


@pytest.fixture(scope="module")
def vocab():
    return load_vocab()


def test_ids_fit_uint8_and_letters_are_distinct_per_alphabet(vocab):
    assert vocab.size < 256
    a_base = encode_sequence(vocab, "dna", "A")[0]
    a_ala = encode_sequence(vocab, "protein", "A")[0]
    assert a_base != a_ala
    # DNA and RNA share A/C/G/N; T only in DNA, U only in RNA
    assert list(encode_sequence(vocab, "dna", "ACGN")) == list(encode_sequence(vocab, "rna", "ACGN"))
    assert encode_sequence(vocab, "dna", "T")[0] != encode_sequence(vocab, "rna", "U")[0]


def test_round_trip_on_real_proteins_and_cds(vocab, data_dir):
    proteins = read_fasta(data_dir / "genbank" / "NC_000932.faa")
    cds = read_fasta(data_dir / "genbank" / "NC_005816.ffn")
    for (_, prot), (_, dna) in zip(proteins, cds):
        rna = dna.replace("T", "U")
        segments = [("dna", dna), ("protein", prot), ("rna", rna)]
        ids = encode_sample(vocab, segments)
        assert ids.dtype == np.uint8
        assert ids[0] == vocab.bos and ids[-1] == vocab.eos
        assert (ids == vocab.sep).sum() == 2
        assert ids[1] == vocab.tag("dna")
        assert decode_sample(vocab, ids) == segments
        assert len(ids) == len(dna) + len(prot) + len(rna) + 2 + 3 + 2


def test_text_form_is_unambiguous(vocab):
    ids = encode_sample(vocab, [("dna", "ACGT"), ("protein", "ACGT")])
    assert to_text(vocab, ids) == "<bos><dna>acgt<sep><protein>ACGT<eos>"


def test_policy_maps_ambiguity_codes_and_case(vocab):
    n = vocab.ambiguous_id["dna"]
    ids = encode_sequence(vocab, "dna", "acgtRYKMswbdhvAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert (ids[4:14] == n).all()
    assert list(encode_sequence(vocab, "rna", "acgt")) == list(encode_sequence(vocab, "rna", "ACGU"))
    assert encode_sequence(vocab, "protein", "MJKLV")[1] == vocab.ambiguous_id["protein"]


@pytest.mark.parametrize(
    "modality,seq,reason",
    [
        ("dna", "ACGU", "illegal_letter"),
        ("dna", "ACG-T", "illegal_letter"),
        ("dna", "ACG T", "illegal_letter"),
        ("protein", "MKV*", "illegal_letter"),
        ("protein", "MKV1", "illegal_letter"),
        ("protein", "MKVé", "illegal_letter"),
        ("dna", "", "empty_sequence"),
        ("dna", "NNNNACGT", "too_ambiguous"),
        ("protein", "XXXXMKVL", "too_ambiguous"),
    ],
)
def test_rejects_with_reason(vocab, modality, seq, reason):
    with pytest.raises(TokenizeError) as e:
        encode_sequence(vocab, modality, seq)
    assert e.value.reason == reason
    assert e.value.detail
