"""README's main command: `bsm demo` runs the data chain end to end on the bundled real data."""
import subprocess
import sys
from pathlib import Path

from bsm_data.accounting import Accounting
from bsm_data.rounds import mix_error
from bsm_data.shards import read_manifest, verify_file

ROOT = Path(__file__).resolve().parents[1]


def test_demo_builds_sources_registry_and_three_decontaminated_rounds(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "bsm_data.cli", "demo", "--output", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "bsm demo: done" in r.stdout and "round-3" in r.stdout
    for name in ("sources/refseq", "sources/single", "sources/gene", "sources/web", "round-1", "round-2", "round-3"):
        m = read_manifest(str(out / name))
        Accounting.from_dict(m["accounting"]).check()
        for entry in m["shards"] + [e for es in m["files"].values() for e in es]:
            verify_file(str(out / name), entry)
    for n, sources in ((1, {"single"}), (2, {"single", "refseq", "gene"}), (3, {"refseq", "gene", "web"})):
        m = read_manifest(str(out / f"round-{n}"))
        assert set(m["mix"]) == sources and mix_error(m) < 0.01
        assert m["decontamination"]["samples_removed"] > 0 and (out / f"round-{n}" / "report" / "contamination.html").exists()
        assert m["validation"]
