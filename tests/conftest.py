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
