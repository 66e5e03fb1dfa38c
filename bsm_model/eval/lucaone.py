"""LucaOne's downstream-task layout, so the suite runs on the paper's own datasets.

LucaOneTasks stores a task as ``dataset/NAME/TYPE/TASK_TYPE/`` with ``train/train.csv``,
``dev/dev.csv``, ``test/test.csv`` and ``label.txt`` (a header line, then one class name per
line; line i is label index i). CSV columns:

* single sequence: ``seq_id, seq_type, seq, label``
* pair:            ``seq_id_a, seq_id_b, seq_type_a, seq_type_b, seq_a, seq_b, label``

``seq_type`` is ``gene`` (nucleotides) or ``prot``. A ``gene`` sequence is read as DNA unless it
is written in U without T (then RNA); ``gene_modality`` forces one (e.g. ``rna`` for ncRPI).
``--task-file`` may name that directory (any ``*.csv`` in ``train/``, ``dev/``, ``test/``;
``dev`` is our ``valid``), or one CSV file, which is split 80:10:10 (stratified for
classification, seeded). ``--task-type``: ``binary`` / ``binary_class``, ``multiclass`` /
``multi_class``, ``regression``; ``multi_label`` is not supported.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .tasks import Example, SupervisedTask, _Normalizer, stratified_split

TASK_TYPES = {"binary": "binary", "binary_class": "binary", "multiclass": "multiclass", "multi_class": "multiclass",
              "regression": "regression"}
SPLIT_DIRS = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}
PAIR_COLUMNS = ("seq_type_a", "seq_a", "seq_type_b", "seq_b", "label")
SINGLE_COLUMNS = ("seq_type", "seq", "label")


class LucaOneFormatError(ValueError):
    pass


def modality_of(seq_type: str, seq: str, gene_modality: str = "auto") -> str:
    t = seq_type.strip().lower()
    if t in ("prot", "protein"):
        return "protein"
    if t in ("dna", "rna"):
        return t
    if t == "gene":
        if gene_modality != "auto":
            return gene_modality
        up = seq.upper()
        return "rna" if "U" in up and "T" not in up else "dna"
    raise LucaOneFormatError(f"unknown seq_type {seq_type!r} (expected gene or prot)")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise LucaOneFormatError(f"{path}: no rows")
    cols = set(rows[0])
    if not (set(PAIR_COLUMNS) <= cols or set(SINGLE_COLUMNS) <= cols):
        raise LucaOneFormatError(f"{path}: columns {sorted(cols)}; expected seq_id,seq_type,seq,label or "
                                 f"seq_id_a,seq_id_b,seq_type_a,seq_type_b,seq_a,seq_b,label")
    return rows


def _label_names(root: Path) -> list[str] | None:
    p = root / "label.txt"
    if not p.is_file():
        return None
    lines = [ln.strip() for ln in p.read_text().splitlines()]
    return [ln for ln in lines[1:] if ln]  # the first line is a header


def load_lucaone(path: str | Path, task_type: str, *, seed: int = 0, gene_modality: str = "auto", name: str | None = None) -> SupervisedTask:
    if task_type not in TASK_TYPES:
        raise LucaOneFormatError(f"task type {task_type!r} is not supported; use one of {sorted(TASK_TYPES)}")
    kind = TASK_TYPES[task_type]
    path = Path(path)
    raw: dict[str, list[dict]] = {}
    if path.is_dir():
        for sub, split in SPLIT_DIRS.items():
            files = sorted((path / sub).glob("*.csv")) if (path / sub).is_dir() else []
            if files:
                raw.setdefault(split, [])
                for f in files:
                    raw[split] += read_rows(f)
        if "train" not in raw or "test" not in raw:
            raise LucaOneFormatError(f"{path}: needs train/*.csv and test/*.csv (dev/*.csv optional)")
        label_root = path
    else:
        raw["all"] = read_rows(path)
        label_root = path.parent
    norm = _Normalizer()
    pair = "seq_a" in next(iter(raw.values()))[0]
    out: dict[str, list[Example]] = {}
    for split, rows in raw.items():
        ex = []
        for i, r in enumerate(rows):
            if pair:
                segs = []
                for side in ("a", "b"):
                    seq = r[f"seq_{side}"]
                    m = modality_of(r[f"seq_type_{side}"], seq, gene_modality)
                    segs.append((m, norm(m, seq)))
                item = f"{r.get('seq_id_a', i)}|{r.get('seq_id_b', i)}"
            else:
                m = modality_of(r["seq_type"], r["seq"], gene_modality)
                segs = [(m, norm(m, r["seq"]))]
                item = r.get("seq_id") or str(i)
            if any(s is None for _, s in segs):
                continue
            label = float(r["label"]) if kind == "regression" else int(float(r["label"]))
            ex.append(Example(f"{split}:{item}", tuple(segs), label))
        out[split] = ex
    notes = []
    if "all" in out:
        ex = out.pop("all")
        labels = [e.label for e in ex]
        idx = stratified_split(labels, {"train": 0.8, "valid": 0.1, "test": 0.1}, seed, stratify=kind != "regression")
        out = {s: [ex[i] for i in idx[s]] for s in ("train", "valid", "test")}
        notes.append(f"one CSV: split 80:10:10 ({'stratified, ' if kind != 'regression' else ''}seed {seed})")
    classes = None
    if kind == "multiclass":
        names = _label_names(label_root)
        n = 1 + max(int(e.label) for split in out.values() for e in split)
        classes = names if names and len(names) >= n else [str(i) for i in range(n)]
    if kind == "binary":
        bad = {e.label for split in out.values() for e in split} - {0, 1}
        if bad:
            raise LucaOneFormatError(f"{path}: binary labels must be 0/1, found {sorted(bad)}")
    notes += norm.notes()
    return SupervisedTask(name or f"lucaone:{path.name}", kind, out, classes, notes, str(path))
