import hashlib
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


def read_fasta(path: Path) -> list[tuple[str, str]]:
    """Minimal FASTA reader for test expectations (the project's readers are under test)."""
    out, header, seq = [], None, []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            if header is not None:
                out.append((header, "".join(seq)))
            header, seq = line[1:], []
        elif line.strip():
            seq.append(line.strip())
    if header is not None:
        out.append((header, "".join(seq)))
    return out


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def digests(out: Path) -> dict[str, str]:
    """sha256 of every file under a build directory, by relative path (byte-identity checks)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*")) if p.is_file()}


SMALL_GENBANK = [str(DATA / "genbank" / f) for f in ("NC_005816.gb", "NC_000932.gb")]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine, two OpenMP threads stall whenever another
    process holds a core (each parallel region waits for the descheduled thread)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory):
    """Real RefSeq shards from two small GenBank files, for model and trainer tests."""
    from bsm_data.build import build_genbank_local

    out = tmp_path_factory.mktemp("shards")
    build_genbank_local(SMALL_GENBANK, str(out), seed=0, num_shards=2)
    return str(out)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`bsm demo` once per session, with a short training and evaluation so the suite stays fast:
    (output dir, completed process)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("demo") / "demo"
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "bsm_data.cli", "demo", "--output", str(out), "--train-steps", "3,2,2",
                        "--val-rows", "8", "--eval-items", "10"], cwd=root, capture_output=True, text=True)
    return out, r
