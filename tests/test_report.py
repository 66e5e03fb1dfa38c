"""report.html opened in headless Chromium: every section renders (its images decode).

Chromium is Debian's package (`apt-get install chromium`); .ci/run installs it and sets
BSM_REQUIRE_BROWSER=1, so CI fails rather than skips when the browser is missing."""
import os
import re
import shutil
import subprocess

import pytest

from bsm_data import htmlpage
from bsm_model.run_report import _CHECK_SCRIPT, SECTIONS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered_dom(path, tmp_path) -> str:
    if not CHROMIUM:
        if os.environ.get("BSM_REQUIRE_BROWSER"):
            pytest.fail("BSM_REQUIRE_BROWSER is set but chromium is not installed")
        pytest.skip("chromium not installed (apt-get install chromium)")
    # flags as the machine notes advise: no sandbox as root, no background networking on a closed network
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def section_states(dom: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([\w-]+)" data-rendered="(\w+)"', dom))


def test_demo_report_renders_every_section_in_chromium(demo_run, tmp_path):
    out, r = demo_run
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    dom = rendered_dom(out / "report.html", tmp_path)
    states = section_states(dom)
    assert states == {sid: "ok" for sid, _ in SECTIONS}
    assert f'data-sections-ok="{len(SECTIONS)}"' in dom
    # the sections hold what they promise, not just a heading
    assert dom.count("<img") == 4  # mix, lengths, loss curves, ICL curve
    for text in ("round 2", "single", "refseq", "gene", "web", "central_dogma_icl", "k-mer", "samples removed"):
        assert text in dom
    for n in (1, 2, 3):  # each round's full contamination report, linked relative to the page
        assert f'<a href="round-{n}/report/contamination.html">' in dom
        assert (out / f"round-{n}" / "report" / "contamination.html").exists()


def test_the_render_check_flags_a_broken_image(tmp_path):
    good = htmlpage.png_figure(_tiny_png(), "good")
    broken = '<figure><img alt="broken" src="data:image/png;base64,iVBORw0KGgoAAAA"></figure>'
    body = f'<section id="a"><h2>A</h2>{good}</section><section id="b"><h2>B</h2>{broken}</section>{_CHECK_SCRIPT}'
    page = tmp_path / "page.html"
    page.write_text(htmlpage.page("check", body))
    assert section_states(rendered_dom(page, tmp_path)) == {"a": "ok", "b": "broken"}


def _tiny_png() -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_loss_curves_put_the_rounds_in_sequence(demo_run):
    from bsm_model.run_report import loss_series

    out, _ = demo_run
    series = loss_series({n: out / "runs" / f"round-{n}" for n in (1, 2, 3)})
    xs = [x for n in (1, 2, 3) for x in series[n]["x"]]
    assert xs == sorted(set(xs)) and xs[0] == 8 * 1024  # first step: 8 rows x 1024 tokens
    for n in (1, 2, 3):  # each round's validation sits at its last step
        assert series[n]["val"][-1]["x"] == series[n]["x"][-1]
