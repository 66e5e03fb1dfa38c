"""Evaluation registry: built-in test sets read from their published formats, registry files."""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter

import pytest

from bsm_data.cli import main as bsm
from bsm_data import evalsets
from bsm_data.evalsets import (
    EvalItem,
    Registry,
    RegistryError,
    builtin_items,
    consensus,
    items_from_file,
    register_items,
)
from bsm_data.query import run_query
from tests.conftest import read_fasta


@pytest.fixture(scope="module")
def builtin():
    items, skipped = builtin_items(tasks=evalsets.PUBLISHED)
    return items, skipped


def test_builtin_counts_match_the_published_files(builtin):
    items, skipped = builtin
    assert skipped == []
    counts = Counter((it.task, it.split, it.modality) for it in items)
    assert counts == {
        ("ncrpi", "all", "rna"): 990,  # NPInter2.0_lncRNA: 990 lncRNAs x 27 proteins (paper appendix C)
        ("ncrpi", "all", "protein"): 27,
        ("ppi", "all", "protein"): 2497,
        ("protstab", "test", "protein"): 12851,  # the paper's split: 53,614 / 2,512 / 12,851
        ("protstab", "valid", "protein"): 2512,
        ("ncrnafam", "test", "rna"): 2529,
        ("zeroshot_ncrna_fitness", "test", "rna"): 2,
        ("zeroshot_protein_fitness", "test", "protein"): 3,
    }
    assert len({it.key for it in items}) == len(items)
    for it in items:
        assert it.sequence == it.sequence.upper()
        if it.modality == "rna":
            assert "T" not in it.sequence  # normalised as training samples are (RNA in U)


def test_items_are_the_published_sequences(builtin, data_dir):
    items, _ = builtin
    by = {it.key: it for it in items}
    with open(data_dir / "eval/protstab_tape/stability_test.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert by[("protstab", "test", "test:00000")].sequence == rows[0]["seq"]
    assert by[("protstab", "test", "test:12850")].sequence == rows[-1]["seq"]
    nrc = read_fasta(data_dir / "eval/ncrna_family_nrc/nRC_test.fasta")
    first = by[("ncrnafam", "test", "nRC:00000:5S_rRNA")]
    assert first.sequence == nrc[0][1].upper().replace("T", "U") and first.role == "seq"
    lnc = dict(read_fasta(data_dir / "eval/ncrpi_npinter_lncrna/NPInter4158_lncRNA_sequence.fa"))
    item = by[("ncrpi", "all", "NPInter4158:NONHSAT039455")]
    assert item.sequence == lnc["NONHSAT039455"].upper().replace("T", "U") and item.role == "a"
    prot = by[("ncrpi", "all", "NPInter4158:ENSP00000309558")]
    assert prot.modality == "protein" and prot.role == "b"
    yeast = {line.split("\t")[0]: line.split("\t")[1].strip() for line in open(data_dir / "eval/ppi_yeast/yeast_dictionary.tsv")}
    assert by[("ppi", "all", "yeast:O13297")].sequence == yeast["O13297"]
    assert {it.role for it in items if it.task == "ppi"} <= {"a", "b", "ab"}


def test_central_dogma_hook_registers_the_test_genes():
    items, skipped = builtin_items(tasks=["central_dogma"])
    counts = Counter((it.split, it.modality, it.role) for it in items)
    assert set(counts) == {("test", "dna", "a"), ("test", "protein", "b")} and not skipped
    assert counts[("test", "dna", "a")] == counts[("test", "protein", "b")] > 100


def test_dms_wild_types(builtin):
    items, _ = builtin
    wt = {it.item_id: it.sequence for it in items if it.task.startswith("zeroshot")}
    assert wt["amyloid_data:wt"] == "DAEFRHDSGYEVHHQKLVFFAEDVGSNKGAIIGLMVGGVVIA"  # Abeta42
    assert wt["gb1_olson2014_doubles_first5000:wt"] == evalsets.KNOWN_WILD_TYPES["gb1_olson2014_doubles_first5000"]
    assert wt["nisthal_data:wt"][1:] == wt["gb1_olson2014_doubles_first5000:wt"][1:]  # same GB1 domain
    assert len(wt["Osa_1_4_Kobori2016:wt"]) == 54 and set(wt["Osa_1_4_Kobori2016:wt"]) <= set("ACGU")
    with pytest.raises(RegistryError):
        evalsets.dms_wild_type("x", ["AAAAAAAAAA", "CCCCCCCCCC", "GGGGGGGGGG"])
    assert consensus(["ACGT", "ACGA", "TCGT"]) == "ACGT"


def test_registry_roundtrip_and_integrity(tmp_path, builtin):
    items, _ = builtin
    small = [it for it in items if it.task in ("ncrnafam", "zeroshot_ncrna_fitness", "zeroshot_protein_fitness")]
    reg_dir = tmp_path / "reg"
    meta = register_items(reg_dir, small)
    assert [(e["task"], e["split"], e["items"]) for e in meta["entries"]] == [
        ("ncrnafam", "test", 2529), ("zeroshot_ncrna_fitness", "test", 2), ("zeroshot_protein_fitness", "test", 3)]
    for e in meta["entries"]:
        assert hashlib.sha256((reg_dir / e["path"]).read_bytes()).hexdigest() == e["sha256"]
    reg = Registry(reg_dir)
    assert sorted(reg.items(), key=lambda it: it.key) == sorted(small, key=lambda it: it.key)
    assert len(reg.items(tasks=["ncrnafam"])) == 2529
    out = run_query(str(reg_dir), "SELECT task, count(*) AS n FROM items GROUP BY ALL ORDER BY task", fmt="csv")
    assert out.splitlines()[1:] == ["ncrnafam,2529", "zeroshot_ncrna_fitness,2", "zeroshot_protein_fitness,3"]
    # a second registration of the same (task, split) replaces it; the registry digest changes
    register_items(reg_dir, [EvalItem("ncrnafam", "test", "x", "seq", "rna", "ACGUACGUACGUAAA", "f.fa")])
    assert len(Registry(reg_dir).items(tasks=["ncrnafam"])) == 1
    assert Registry(reg_dir).sha256 != meta["sha256"]
    # a modified file is refused
    path = reg_dir / Registry(reg_dir).entries[0]["path"]
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(RegistryError, match="sha256"):
        Registry(reg_dir).items()
    with pytest.raises(RegistryError, match="duplicate"):
        register_items(tmp_path / "r2", [EvalItem("t", "test", "a", "seq", "rna", "ACGU", "f")] * 2)


def test_register_cli_fasta_csv_and_config(tmp_path):
    fa = tmp_path / "genes.fa"
    fa.write_text(">g1 first\nATGAAACGCATTAGCACCACCATTACCACC\n>g2\nATGGCTGACCGTTTANNN\n>bad\nATG-*12\n>g1\nATGCCC\n")
    cs = tmp_path / "peptides.csv"
    cs.write_text("name,peptide,label\np1,MKTAYIAKQR,1\np2,mktayiakqrj,0\n")
    reg = tmp_path / "reg"
    assert bsm(["registry", "register", "--registry", str(reg), "--task", "central_dogma", "--split", "test",
                          "--input", str(fa), "--modality", "dna"]) == 0
    assert bsm(["registry", "register", "--registry", str(reg), "--task", "peptides", "--split", "test", "--input", str(cs),
                          "--modality", "protein", "--column", "peptide", "--id-column", "name"]) == 0
    r = Registry(reg)
    by = {(it.task, it.item_id): it for it in r.items()}
    assert by[("central_dogma", "g1")].sequence == "ATGAAACGCATTAGCACCACCATTACCACC"
    assert ("central_dogma", "g1#2") in by  # repeated header word kept, made unique
    assert by[("peptides", "p2")].sequence == "MKTAYIAKQRX"  # normalised: upper case, J -> X
    entry = {(e["task"], e["split"]): e for e in r.entries}
    assert entry[("central_dogma", "test")]["skipped"] == {"illegal_letter": 1}
    # a TOML config registers several sets in one command; relative inputs are relative to it
    cfg = tmp_path / "sets.toml"
    cfg.write_text('[[set]]\ntask = "cd"\nsplit = "valid"\ninput = "genes.fa"\nmodality = "dna"\n'
                   '[[set]]\ntask = "pep"\nsplit = "test"\ninput = "peptides.csv"\nmodality = "protein"\ncolumn = "peptide"\n')
    assert bsm(["registry", "register", "--registry", str(reg), "--config", str(cfg)]) == 0
    meta = json.loads((reg / "registry.json").read_text())
    assert {(e["task"], e["split"]) for e in meta["entries"]} == {
        ("central_dogma", "test"), ("peptides", "test"), ("cd", "valid"), ("pep", "test")}
    items, skipped = items_from_file(cs, task="t", split="s", modality="protein", column="peptide")
    assert [it.item_id for it in items] == ["000000", "000001"] and not skipped
    with pytest.raises(RegistryError, match="no sequence column"):
        items_from_file(cs, task="t", split="s", modality="protein")


def test_registry_commands_in_the_bsm_cli(tmp_path):
    from bsm_data.cli import build_parser

    args = build_parser().parse_args(["registry", "list", "--registry", str(tmp_path)])
    with pytest.raises(RegistryError, match="no registry.json"):
        args.func(args, [])
