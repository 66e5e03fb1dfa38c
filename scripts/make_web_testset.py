"""Rebuild ``data/web/fineweb_edu_sample.parquet``: real documents in the FineWeb-Edu schema.

FineWeb-Edu itself cannot be fetched here, so the web extractor is developed and measured on
real documentation pages that, like FineWeb-Edu pages, explain biology in prose and quote DNA,
RNA and protein sequences in every layout (FASTA, wrapped blocks, GenBank ORIGIN, inline), plus
real non-biology pages as negatives (hex digests, UPPER-CASE constants, licence headings).
Every document comes from a pinned Debian bookworm package (sha256 checked) or from the copy of
the Biopython tutorial in ``/work/shared/data/prose`` (byte-identical to the one in
``python-biopython-doc``); HTML pages are turned into text with trafilatura, as FineWeb did.

    python scripts/make_web_testset.py                      # apt-get download the packages
    python scripts/make_web_testset.py --debs DIR           # use .deb files already in DIR

Needs ``dpkg-deb``, ``pod2text`` (perl) and trafilatura (a datatrove[processing] dependency).
The output depends only on the pinned packages (and the trafilatura / pod2text versions).

Columns are FineWeb-Edu's, with honest values:
- ``id``: ``<urn:uuid:...>``, a uuid5 of the document's source path (not a Common Crawl record id);
- ``dump``: ``bsm-web-testset-v1`` (these pages are not from a Common Crawl dump);
- ``url``: where the same text is published upstream; the fragment names the section
  (``#section-3.1``), or the package path when there is no upstream page;
- ``date``: release date of the packaged version (ISO 8601, UTC);
- ``file_path``: ``deb:<package .deb>:<path inside>`` (plus ``#section`` for split documents);
- ``language``: ``en``; ``language_score``, ``token_count``, ``score``, ``int_score``: null
  (FineWeb's fastText language model, GPT-2 tokenizer and edu classifier are not available
  offline; we do not invent values).

Labels (``data/web/labels.jsonl``) were written by hand by reading the documents; they are
not produced by this script. See ``data/web/README.md``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "data" / "web" / "fineweb_edu_sample.parquet"
SHARED_TUTORIAL = Path("/work/shared/data/prose/biopython_Tutorial.txt")

# package -> (version, sha256 of the .deb, release date used as the document date)
PACKAGES = {
    "python-biopython-doc": ("1.80+dfsg-4", "350b871fa68e73e7dee78d6affec8a27bcbb31cd690843a82aefe187dab1712f", "2022-11-18T00:00:00Z"),
    "python-skbio-doc": ("0.5.8-4", "f9b55a6f6b18a0d1da4c03b61807585991636d32216347ccaae79f0fc0676509", "2022-11-02T00:00:00Z"),
    "primer3": ("2.6.1-4", "aff8701b436ea287d737dcd8ba340f3275ee64be80825e180e4e926efcd8fb53", "2022-05-10T00:00:00Z"),
    "r-bioc-biostrings": ("2.66.0-1", "94ba289411284aaf42501357cac6f50b559d23d5f9c1300fa1e4f2e91cd4fa12", "2022-11-01T00:00:00Z"),
    "libbio-perl-perl": ("1.7.8-1", "8de1e59e8cf22393520dc63f4e1613569c621ca54257e41ec664c88fee4e644f", "2021-02-03T00:00:00Z"),
    "python3-biopython": ("1.80+dfsg-4+b1", "5888356eff82d5fd535ba4baff9f13dcadd7217fde56e9e1f805c253966923d8", "2022-11-18T00:00:00Z"),
    "python3.11-doc": ("3.11.2-6+deb12u9", "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be", "2023-02-08T00:00:00Z"),
}
ARCH = {"primer3": "amd64", "r-bioc-biostrings": "amd64", "python3-biopython": "amd64"}

SCHEMA = pa.schema([
    ("text", pa.string()),
    ("id", pa.string()),
    ("dump", pa.string()),
    ("url", pa.string()),
    ("date", pa.string()),
    ("file_path", pa.string()),
    ("language", pa.string()),
    ("language_score", pa.float64()),
    ("token_count", pa.int64()),
    ("score", pa.float64()),
    ("int_score", pa.int64()),
])
DUMP = "bsm-web-testset-v1"

SKBIO_PAGES = [
    "index.html", "alignment.html", "sequence.html", "io.html", "diversity.html", "stats.html", "tree.html",
    "metadata.html", "workflow.html", "util.html",
    *[f"generated/skbio.alignment.{n}.html" for n in (
        "TabularMSA", "StripedSmithWaterman", "AlignmentStructure", "global_pairwise_align_nucleotide",
        "global_pairwise_align_protein", "local_pairwise_align_ssw", "make_identity_substitution_matrix")],
    *[f"generated/skbio.io.format.{n}.html" for n in (
        "fasta", "fastq", "genbank", "embl", "gff3", "stockholm", "clustal", "phylip", "qseq", "blast6",
        "blast7", "newick", "lsmat", "ordination", "taxdump", "binary_dm")],
    *[f"generated/skbio.sequence.{n}.html" for n in (
        "DNA", "RNA", "Protein", "Sequence", "GeneticCode", "GrammaredSequence", "distance")],
]
BIOPERL_MODULES = [
    "Bio/PrimarySeq.pm", "Bio/Seq.pm", "Bio/Seq/PrimedSeq.pm", "Bio/Seq/RichSeq.pm", "Bio/SimpleAlign.pm",
    "Bio/Tools/Sigcleave.pm", "Bio/Tools/AmpliconSearch.pm", "Bio/Tools/SeqStats.pm", "Bio/Tools/CodonTable.pm",
    "Bio/Tools/IUPAC.pm", "Bio/Tools/SeqPattern.pm", "Bio/Tools/Run/Analysis.pm", "Bio/SeqIO.pm", "Bio/SeqIO/fastq.pm",
    "Bio/SeqFeature/Primer.pm", "Bio/SeqFeature/SubSeq.pm", "Bio/SeqFeature/Amplicon.pm",
    "Bio/SeqFeature/Tools/Unflattener.pm", "Bio/Search/HSP/BlastHSP.pm", "Bio/Tools/Primer3.pm", "Bio/Tools/OddCodes.pm",
]
# Biopython API documentation (docstrings, as on biopython.org/docs/1.80/api): the *blind* set,
# added after the extractor was frozen and labelled before it was run on them.
BIOPYTHON_API = [
    "Bio/Seq.py", "Bio/SeqRecord.py", "Bio/SeqUtils/__init__.py", "Bio/SeqUtils/MeltingTemp.py",
    "Bio/SeqUtils/ProtParam.py", "Bio/SeqUtils/CheckSum.py", "Bio/SeqIO/FastaIO.py", "Bio/pairwise2.py",
    "Bio/motifs/__init__.py", "Bio/Restriction/Restriction.py", "Bio/Data/CodonTable.py", "Bio/AlignIO/__init__.py",
]
PYTHON_PAGES = [
    "library/base64.html", "library/binascii.html", "library/hashlib.html", "library/hmac.html",
    "library/secrets.html", "library/uuid.html", "library/string.html", "library/re.html", "library/struct.html",
    "library/errno.html", "library/signal.html", "library/stat.html", "library/socket.html", "library/curses.html",
    "library/unicodedata.html", "library/codecs.html", "library/zlib.html", "library/csv.html", "library/json.html",
    "library/difflib.html", "library/random.html", "library/sqlite3.html", "library/urllib.parse.html",
    "library/http.html", "library/locale.html", "library/constants.html", "library/functions.html",
    "tutorial/introduction.html", "tutorial/controlflow.html", "glossary.html", "license.html", "copyright.html",
    "faq/programming.html", "howto/regex.html", "howto/unicode.html",
]


# ------------------------------------------------------------------------------ packages


def deb_name(pkg: str) -> str:
    version = PACKAGES[pkg][0].replace(":", "%3a")
    return f"{pkg}_{version}_{ARCH.get(pkg, 'all')}.deb"


def fetch_debs(deb_dir: Path) -> None:
    missing = [p for p in PACKAGES if not (deb_dir / deb_name(p)).exists()]
    if missing:
        subprocess.run(["apt-get", "download", *[f"{p}={PACKAGES[p][0]}" for p in missing]], cwd=deb_dir, check=True)
    for pkg, (_, sha, _) in PACKAGES.items():
        if sha:
            got = hashlib.sha256((deb_dir / deb_name(pkg)).read_bytes()).hexdigest()
            if got != sha:
                raise SystemExit(f"{deb_name(pkg)}: sha256 {got}, expected {sha}")


def extract(deb_dir: Path, root: Path) -> None:
    for pkg in PACKAGES:
        subprocess.run(["dpkg-deb", "-x", str(deb_dir / deb_name(pkg)), str(root)], check=True)


# ----------------------------------------------------------------------------- documents


def doc(text: str, source_path: str, url: str, pkg: str, section: str = "") -> dict:
    file_path = f"deb:{deb_name(pkg)}:{source_path}" + (f"#{section}" if section else "")
    return {
        "text": text,
        "id": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, file_path)}>",
        "dump": DUMP,
        "url": url,
        "date": PACKAGES[pkg][2],
        "file_path": file_path,
        "language": "en",
        "language_score": None,
        "token_count": None,
        "score": None,
        "int_score": None,
    }


_SECTION = re.compile(r"^(\d+\.\d+) (.+)\n\*=\*=[*=]*$", re.M)
_CHAPTER = re.compile(r"^Chapter (\d+)  (.+)\n\*{5,}$", re.M)


def tutorial_docs(root: Path) -> list[dict]:
    """The Biopython tutorial, one document per chapter introduction and per N.M section."""
    path = "/usr/share/doc/python-biopython-doc/Doc/Tutorial.txt.gz"
    text = gzip.decompress((root / path.lstrip("/")).read_bytes()).decode("utf-8")
    if SHARED_TUTORIAL.exists() and SHARED_TUTORIAL.read_text(encoding="utf-8") != text:
        raise SystemExit(f"{SHARED_TUTORIAL} differs from {path}")
    start = _CHAPTER.search(text).start()  # skip the table of contents
    cuts = sorted([(m.start(), f"chapter-{m.group(1)}") for m in _CHAPTER.finditer(text)]
                  + [(m.start(), f"section-{m.group(1)}") for m in _SECTION.finditer(text) if m.start() >= start])
    end = text.index("-----------------------------------------------------------------------\n   This document was translated")
    docs = []
    for i, (pos, name) in enumerate(cuts):
        stop = cuts[i + 1][0] if i + 1 < len(cuts) else end
        body = text[pos:stop].strip("\n")
        if len(body.split("\n")) < 4:
            continue
        docs.append(doc(body + "\n", path, f"https://biopython.org/DIST/docs/tutorial/Tutorial.html#{name}", "python-biopython-doc", name))
    return docs


def html_text(html: bytes) -> str:
    import trafilatura

    return trafilatura.extract(html.decode("utf-8", "replace"), favor_precision=True, include_comments=False, deduplicate=False) or ""


def html_docs(root: Path, base: str, pages: list[str], url_base: str, package: str) -> list[dict]:
    """One document per non-empty HTML page of an installed Debian documentation package."""
    out = []
    for page in pages:
        text = html_text((root / base.lstrip("/") / page).read_bytes())
        if text.strip():
            out.append(doc(text + "\n", base + page, url_base + page, package))
    return out


def primer3_docs(root: Path) -> list[dict]:
    path = "/usr/share/doc/primer3/primer3_manual.htm"
    text = html_text((root / path.lstrip("/")).read_bytes())
    return [doc(text + "\n", path, "https://primer3.org/manual.html", "primer3")]


def restriction_docs(root: Path) -> list[dict]:
    path = "/usr/share/doc/python-biopython-doc/Doc/cookbook/Restriction/Restriction.md.gz"
    text = gzip.decompress((root / path.lstrip("/")).read_bytes()).decode("utf-8")
    return [doc(text, path, "https://github.com/biopython/biopython/blob/biopython-180/Doc/cookbook/Restriction/Restriction.md", "python-biopython-doc")]


def biostrings_docs(root: Path) -> list[dict]:
    path = "/usr/lib/R/site-library/Biostrings/doc/PairwiseAlignments.Rnw"
    text = (root / path.lstrip("/")).read_text(encoding="utf-8")
    return [doc(text, path, "https://bioconductor.org/packages/3.16/bioc/vignettes/Biostrings/inst/doc/PairwiseAlignments.pdf", "r-bioc-biostrings")]


def bioperl_docs(root: Path) -> list[dict]:
    base = "/usr/share/perl5/"
    out = []
    for mod in BIOPERL_MODULES:
        # pod2text exits 2 when the POD has (harmless) formatting errors; the text is still complete
        text = subprocess.run(["pod2text", str(root / base.lstrip("/") / mod)], capture_output=True).stdout.decode("utf-8", "replace")
        if not text.strip():
            raise SystemExit(f"pod2text produced nothing for {mod}")
        name = mod[:-3].replace("/", "::")
        out.append(doc(text, base + mod, f"https://metacpan.org/pod/{name}", "libbio-perl-perl"))
    return out


def api_text(source: str, module: str) -> str:
    """A module's documentation as text: its docstring, then each public class and function
    (methods indented under their class) with its signature and docstring, in source order,
    like ``pydoc`` (read with ``ast``; nothing is imported)."""
    import ast

    tree = ast.parse(source)
    out = [module, "=" * len(module), ""]
    if doc := ast.get_docstring(tree, clean=True):
        out += [doc, ""]

    def walk(node, depth: int) -> None:
        for ch in node.body:
            if not isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if ch.name.startswith("_") and ch.name != "__init__":
                continue
            doc = ast.get_docstring(ch, clean=True)
            ind = "    " * depth
            if isinstance(ch, ast.ClassDef):
                bases = ", ".join(ast.unparse(b) for b in ch.bases)
                head = f"class {ch.name}({bases})" if bases else f"class {ch.name}"
            else:
                head = f"{ch.name}({ast.unparse(ch.args)})"
            if doc or isinstance(ch, ast.ClassDef):
                out.append(ind + head)
                if doc:
                    out.extend((ind + "    " + line) if line else "" for line in doc.split("\n"))
                out.append("")
            if isinstance(ch, ast.ClassDef):
                walk(ch, depth + 1)

    walk(tree, 0)
    return "\n".join(out) + "\n"


def biopython_api_docs(root: Path) -> list[dict]:
    base = "/usr/lib/python3/dist-packages/"
    out = []
    for rel in BIOPYTHON_API:
        module = rel[:-3].replace("/__init__", "").replace("/", ".")
        text = api_text((root / base.lstrip("/") / rel).read_text(encoding="utf-8"), module)
        out.append(doc(text, base + rel, f"https://biopython.org/docs/1.80/api/{module}.html", "python3-biopython"))
    return out


def build(deb_dir: Path, out: Path) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        extract(deb_dir, root)
        docs = (tutorial_docs(root) + restriction_docs(root) + html_docs(root, "/usr/share/doc/python-skbio-doc/html/", SKBIO_PAGES, "https://scikit.bio/docs/0.5.8/", "python-skbio-doc") + primer3_docs(root)
                + biostrings_docs(root) + bioperl_docs(root) + html_docs(root, "/usr/share/doc/python3.11/html/", PYTHON_PAGES, "https://docs.python.org/3.11/", "python3.11-doc") + biopython_api_docs(root))
    ids = [d["id"] for d in docs]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate document ids")
    table = pa.Table.from_pylist(docs, schema=SCHEMA)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp_out, compression="zstd", row_group_size=64)
    os.replace(tmp_out, out)
    return docs



# ------------------------------------------------------------------------------- labels
#
# data/web/labels_hand.jsonl holds one hand-written label per line. The hand-written fields say
# where a sequence is, in the terms a reader uses (line numbers, 1-based, and a few letters of
# the sequence); ``--resolve-labels`` turns them into character spans (``start``, ``end``,
# 0-based, end exclusive) and counts the residues, so evaluation needs no interpretation:
#   {"doc": D, "line": n, "at": "ACGT..."}        the letter run that starts at ``at`` on line n
#   {"doc": D, "line": n, "seq": "ACGT..."}       the same, and the run must equal ``seq``
#   {"doc": D, "lines": [a, b], "at"?, "end"?}    a block from line a (from ``at``, else the
#                                                 first letter) to line b (to the end of
#                                                 ``end``, else the last letter)
#   {"doc": D, "rows": [a, b], "step"?: k}        one sequence per line a, a+k, ..., b: the
#                                                 longest run of letters and gaps on the line
# plus "mod" (dna | rna | protein) and "occ" (which occurrence of ``at`` on the line, 0-based).
# ``doc`` is a short name (see ``short_name``). The resolved file, data/web/labels.jsonl, has one
# row per labelled sequence: doc, doc_id (the parquet ``id``), modality, start, end, residues
# (letters in the span) and the span's text.

LABELS = REPO / "data" / "web" / "labels.jsonl"
HAND_LABELS = REPO / "data" / "web" / "labels_hand.jsonl"
_LETTERS = re.compile(r"[A-Za-z]+")
_ROW = re.compile(r"[A-Za-z][A-Za-z.\-~*]*[A-Za-z]")


def short_name(file_path: str) -> str:
    """``bio:section-3.1``, ``skbio:skbio.io.format.fasta.html``, ``py:re.html`` ..."""
    pkg = file_path.split(":")[1].split("_")[0]
    inner = file_path.split(":", 2)[2]
    prefix = {"python-biopython-doc": "bio", "python-skbio-doc": "skbio", "python3.11-doc": "py", "python3-biopython": "api",
              "libbio-perl-perl": "perl", "primer3": "primer3", "r-bioc-biostrings": "biostr"}[pkg]
    if "#" in inner:
        return f"{prefix}:{inner.split('#')[1]}"
    if prefix == "api":
        return f"api:{inner.split('dist-packages/', 1)[1]}"
    return f"{prefix}:{inner.rsplit('/', 1)[1]}"


def _line_offsets(text: str) -> list[int]:
    offs, pos = [], 0
    for line in text.split("\n"):
        offs.append(pos)
        pos += len(line) + 1
    return offs


def _resolve_one(lab: dict, text: str, offs: list[int]) -> list[tuple[int, int]]:
    lines = text.split("\n")

    def find(n: int, needle: str, occ: int = 0, after: int = 0) -> int:
        line = lines[n - 1]
        i = line.find(needle, after)
        for _ in range(occ):
            i = line.find(needle, i + 1)
        if i < 0:
            raise ValueError(f"{lab}: {needle!r} not on line {n}: {line[:120]!r}")
        return i

    if "rows" in lab:
        a, b = lab["rows"]
        spans = []
        for n in range(a, b + 1, lab.get("step", 1)):
            runs = list(_ROW.finditer(lines[n - 1]))
            if not runs:
                raise ValueError(f"{lab}: no row on line {n}")
            best = max(runs, key=lambda m: sum(c.isalpha() for c in m.group()))
            spans.append((offs[n - 1] + best.start(), offs[n - 1] + best.end()))
        return spans
    if "line" in lab:
        n = lab["line"]
        i = find(n, lab.get("at") or lab["seq"], lab.get("occ", 0))
        m = _LETTERS.match(lines[n - 1], i)
        if "seq" in lab and m.group() != lab["seq"]:
            raise ValueError(f"{lab}: run on line {n} is {m.group()!r}")
        return [(offs[n - 1] + i, offs[n - 1] + m.end())]
    a, b = lab["lines"]
    if "at" in lab:
        start = offs[a - 1] + find(a, lab["at"], lab.get("occ", 0))
    else:
        start = offs[a - 1] + _LETTERS.search(lines[a - 1]).start()
    if "end" in lab:
        after = start - offs[b - 1] if a == b else 0
        end = offs[b - 1] + find(b, lab["end"], after=after) + len(lab["end"])
    else:
        end = offs[b - 1] + list(_LETTERS.finditer(lines[b - 1]))[-1].end()
    return [(start, end)]


def resolve_labels(parquet: Path = OUT, hand: Path = HAND_LABELS, labels: Path = LABELS) -> int:
    """``labels_hand.jsonl`` (written by hand) -> ``labels.jsonl`` (one row per labelled sequence)."""
    docs = {short_name(r["file_path"]): r for r in pq.read_table(parquet, columns=["id", "text", "file_path"]).to_pylist()}
    rows = []
    for lab in (json.loads(line) for line in hand.read_text().splitlines() if line.strip()):
        d = docs[lab["doc"]]
        for start, end in _resolve_one(lab, d["text"], _line_offsets(d["text"])):
            span = d["text"][start:end]
            rows.append({
                "doc": lab["doc"], "doc_id": d["id"], "modality": lab["mod"], "start": start, "end": end,
                "residues": sum(c.isalpha() for c in span), "text": span,
            })
    rows.sort(key=lambda r: (r["doc"], r["start"]))
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)

UNLABELLED = {f"bio:section-6.{i}" for i in range(2, 9)}  # alignment-heavy tutorial sections, not labelled


def evaluate_splits(parquet: Path = OUT, labels: Path = LABELS) -> str:
    """Precision and recall of ``bsm_data.web.extract_sequences`` per split and modality."""
    sys.path.insert(0, str(REPO))
    from bsm_data.web import evaluate, extract_sequences, split_of

    docs = pq.read_table(parquet, columns=["id", "text", "file_path"]).to_pylist()
    rows = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
    out = [f"{'split':<8}{'modality':<9}{'docs':>5}{'labelled':>9}{'recalled':>9}{'recall':>8}{'predicted':>10}{'correct':>8}{'precision':>10}"]
    for split in ("dev", "heldout", "blind"):
        pred = {d["id"]: extract_sequences(d["text"]).found for d in docs
                if short_name(d["file_path"]) not in UNLABELLED and split_of(d["id"], d["file_path"]) == split}
        table = evaluate(pred, [r for r in rows if r["doc_id"] in pred])["table"]
        for m in ("dna", "rna", "protein", "all"):
            t = table[m]
            fmt = lambda x: f"{x:.3f}" if x is not None else "-"  # noqa: E731
            out.append(f"{split:<8}{m:<9}{len(pred):>5}{t['labelled']:>9}{t['recalled']:>9}{fmt(t['recall']):>8}"
                       f"{t['predicted']:>10}{t['true_positives']:>8}{fmt(t['precision']):>10}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debs", help="directory holding the pinned .deb files (default: apt-get download into a temporary directory)")
    ap.add_argument("--output", default=str(OUT))
    ap.add_argument("--resolve-labels", action="store_true", help="only turn the hand-written labels into character spans")
    ap.add_argument("--evaluate", action="store_true", help="only print precision/recall of the extractor per split")
    args = ap.parse_args(argv)
    if args.evaluate:
        print(evaluate_splits(Path(args.output)))
        return 0
    if args.resolve_labels:
        print(f"{LABELS}: {resolve_labels(Path(args.output))} labels")
        return 0
    for tool in ("dpkg-deb", "pod2text"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    if args.debs:
        deb_dir = Path(args.debs)
        fetch_debs(deb_dir)
        docs = build(deb_dir, Path(args.output))
    else:
        with tempfile.TemporaryDirectory() as d:
            fetch_debs(Path(d))
            docs = build(Path(d), Path(args.output))
    total = sum(len(d["text"]) for d in docs)
    print(f"{args.output}: {len(docs)} documents, {total:,} characters, {os.path.getsize(args.output):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
