"""Beam command-line options shared by the ``bsm data`` commands (imports no Beam: ``bsm --help`` stays fast)."""
from __future__ import annotations


def beam_args_for(beam_args: list[str], workers: int) -> list[str]:
    """Default to the local DirectRunner (Prism would download a binary); ``workers`` > 1 runs
    it multi-process. Options the user passed (``--runner DataflowRunner ...``) win."""
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        args.insert(0, "--runner=DirectRunner")
    if workers > 1 and not any("direct_num_workers" in a for a in args):
        args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    return args


def run_build(args, beam_args: list[str], *, local, beam) -> int:
    """Run a ``bsm data`` build on the chosen engine and print its summary.

    ``local()`` returns the manifest; ``beam(beam_args)`` runs the pipeline, which writes it."""
    import time

    from bsm_data.cli import summary_table
    from bsm_data.shards import read_manifest

    start = time.perf_counter()
    if args.engine == "local":
        if beam_args:
            raise SystemExit(f"--engine local takes no Beam options: {' '.join(beam_args)}")
        manifest = local()
    else:
        beam(beam_args_for(beam_args, args.workers))
        manifest = read_manifest(args.output)
    print(summary_table(manifest, args.output))
    print(f"\ndone in {time.perf_counter() - start:.1f}s")
    return 0
