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
