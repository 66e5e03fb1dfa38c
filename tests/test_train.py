"""bsm train end to end on real shards: learning, metrics, exact resume after kill -9, rounds,
data order and DDP slicing, and refusal of bad manifests, shards and checkpoints."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bsm_model import checkpoint as ckpt
from bsm_model import cli
from bsm_model.data import TrainData
from bsm_model.metrics import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]




@pytest.fixture(scope="module")
def shards(small_shards):
    return Path(small_shards)


def args(manifest, out, *extra):
    return ["train", "--manifest", str(manifest), "--out", str(out), "--config", "tiny", "--batch-size", "2",
            "--lr", "3e-3", "--min-lr", "3e-4", "--val-fraction", "0.05", "--val-max-rows", "8", "--log-every", "100",
            "--threads", "1", *extra]


def train_records(run):
    return [r for r in read_metrics(Path(run) / "metrics.jsonl") if r["kind"] == "train"]


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "r1"
    assert cli.main(args(shards, run, "--steps", "8", "--val-every", "4", "--ckpt-every", "4")) == 0
    return run


def test_training_learns_and_writes_metrics(trained):
    recs = read_metrics(trained / "metrics.jsonl")
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 9))
    for r in train:
        assert {"loss", "lr", "grad_norm", "tokens_per_s", "mfu", "step_time_s", "tokens"} <= set(r)
        assert r["mfu"] is None and r["tokens_per_s"] > 0  # CPU: no peak FLOPs without --peak-flops
    assert np.mean([r["loss"] for r in train[-3:]]) < train[0]["loss"] - 0.5
    val = [r for r in recs if r["kind"] == "val"]
    assert [r["step"] for r in val] == [4, 8]
    for m in ("dna", "rna", "protein"):
        assert val[-1][f"tokens_{m}"] > 0 and 0 < val[-1][f"loss_{m}"] < 10
    assert val[-1]["loss"] < val[0]["loss"]
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.readlink(trained / "checkpoint") == os.path.join("checkpoints", "step-00000008")
    files = {p.name for p in (trained / "checkpoint").iterdir()}
    assert files == {"state.json", "model.safetensors", "optimizer.safetensors", "optimizer.json", "rng-rank00000.safetensors"}
    state = json.loads((trained / "checkpoint" / "state.json").read_text())
    assert state["data"]["position"] == 16 and state["step"] == 8
    run = json.loads((trained / "run.json").read_text())
    assert run["data"]["val_source"] == "held_out" and run["data"]["val_rows"] == 8


KILLED_CHILD = """
import sys, time
from bsm_model import cli, train
a, rest = cli.build_parser().parse_known_args(sys.argv[1:])
cfg, explicit = cli.train_config_from_args(a)
train.run(cfg, explicit=explicit, hooks=[lambda rec: time.sleep(0.15)])
"""


def test_kill9_then_resume_gives_the_uninterrupted_losses_bitwise(shards, tmp_path):
    extra = ["--steps", "7", "--ckpt-every", "3", "--val-every", "3"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert cli.main(args(shards, clean, *extra)) == 0

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, *args(shards, killed, *extra)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while proc.poll() is None and time.time() < deadline:
            link = killed / "checkpoint"
            if link.is_symlink() and os.readlink(link).endswith("step-00000003") and (killed / "metrics.jsonl").exists() \
                    and any(r["kind"] == "train" and r["step"] == 4 for r in read_metrics(killed / "metrics.jsonl")):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert max(r["step"] for r in train_records(killed)) < 7  # killed mid-run

    assert cli.main(args(shards, killed, *extra)) == 0  # resumes from step 3
    a, b = read_metrics(clean / "metrics.jsonl"), read_metrics(killed / "metrics.jsonl")
    strip = lambda rs: [(r["kind"], r["step"], r["loss"], r.get("lr"), r.get("grad_norm"), r.get("loss_dna")) for r in rs]
    assert strip(b) == strip(a)  # every loss, lr, grad norm and validation loss, bitwise
    wa = load_file(str(clean / "checkpoint" / "model.safetensors"))
    wb = load_file(str(killed / "checkpoint" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_next_round_starts_from_previous_weights(shards, trained, tmp_path):
    r2 = tmp_path / "r2"
    argv = ["train", "--manifest", str(shards), "--out", str(r2), "--init-from", str(trained / "checkpoint"),
            "--round", "2", "--steps", "3", "--batch-size", "2", "--val-fraction", "0.05", "--val-max-rows", "2", "--threads", "1"]
    assert cli.main(argv) == 0
    run = json.loads((r2 / "run.json").read_text())
    assert run["model_config"]["dim"] == 128 and run["train_config"]["model"] == "tiny"  # from the checkpoint
    assert run["init_from"]["step"] == 8
    assert run["schedule"] == {"lr": 1e-5, "min_lr": 1e-7, "total_steps": 3, "warmup_steps": 0, "decay": "cosine"}
    recs = train_records(r2)
    assert recs[0]["lr"] == 1e-5
    assert recs[0]["loss"] < train_records(trained)[0]["loss"] - 0.5  # starts trained, not from scratch
    w1 = load_file(str(trained / "checkpoint" / "model.safetensors"))
    w2 = load_file(str(r2 / "checkpoint" / "model.safetensors"))
    drift = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    assert 0 < drift < 1e-4  # three steps at lr <= 1e-5 from round 1's weights
    opt = json.loads((r2 / "checkpoint" / "optimizer.json").read_text())
    steps = load_file(str(r2 / "checkpoint" / "optimizer.safetensors"))
    assert {float(v) for k, v in steps.items() if k.endswith(".step")} == {3.0}  # fresh optimizer
    assert opt["param_groups"][0]["weight_decay"] == 0.1 and opt["param_groups"][1]["weight_decay"] == 0.0
    before = (r2 / "metrics.jsonl").read_text()
    assert cli.main(argv) == 0  # the same command again: the run is complete, nothing changes
    assert (r2 / "metrics.jsonl").read_text() == before


def test_order_is_deterministic_and_ranks_read_disjoint_rows(shards):
    d1 = TrainData(str(shards), seed=3, val_fraction=0.05)
    d2 = TrainData(str(shards), seed=3, val_fraction=0.05)
    assert np.array_equal(d1.order(0), d2.order(0)) and not np.array_equal(d1.order(0), d1.order(1))
    assert sorted(d1.order(1).tolist()) == d1.train_ids.tolist()
    assert not set(d1.val_ids.tolist()) & set(d1.train_ids.tolist())
    # the held-out rows depend on the data, not on --seed
    assert np.array_equal(TrainData(str(shards), seed=4, val_fraction=0.05).val_ids, d1.val_ids)
    n = d1.n_train
    assert np.array_equal(d1.stream(n - 2, 4), np.concatenate([d1.order(0)[-2:], d1.order(1)[:2]]))
    # a step of 2 ranks x 2 micro-batches x 3 rows covers the stream slice once
    rows = [d1.stream(10 + (a * 2 + r) * 3, 3) for a in range(2) for r in range(2)]
    assert np.array_equal(np.sort(np.concatenate(rows)), np.sort(d1.stream(10, 12)))
    b0 = d1.train_batch(10, 0, 0, 2, 3, doc_mask=True)
    b1 = d1.train_batch(10, 0, 1, 2, 3, doc_mask=True)
    assert not torch.equal(b0.input_ids, b1.input_ids)
    # windowed shuffling: a window holds the rows of its shards only
    w = TrainData(str(shards), seed=3, val_fraction=0.0, shuffle_window=1)
    order = w.order(0)
    shard_of = np.searchsorted(w.train.offsets, order, side="right") - 1
    first = shard_of[0]
    k = int(w.train.rows[first])
    assert (shard_of[:k] == first).all() and (shard_of[k:] != first).all()
    assert sorted(order.tolist()) == list(range(len(w.train)))


def copy_shards(src, dst, edit=None):
    shutil.copytree(src, dst)
    if edit:
        m = json.loads((dst / "manifest.json").read_text())
        edit(m)
        (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_manifest_validation_split_is_used(shards, tmp_path):
    def move(m):
        m["validation"] = [m["shards"].pop()]
    d = TrainData(str(copy_shards(shards, tmp_path / "s", move)), val_max_rows=100_000)
    m = d.manifest
    assert d.val_source == "manifest"
    assert d.n_train == m["shards"][0]["rows"] and len(d.val_ids) == m["validation"][0]["rows"]


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["vocab"].update(version=2), "vocabulary bsm-vocab v2"),
    (lambda m: m["schemas"].update(packed_row=2), "schema packed_row v2"),
    (lambda m: m["vocab"].update(sha256="0" * 64), "vocabulary file of sha256"),
    (lambda m: m["shards"][0].update(sha256="f" * 64), "does not match the manifest"),
    (lambda m: m.update(seq_len=2048), "exceed the model's context"),
])
def test_refuses_mismatched_manifests_and_corrupt_shards(shards, tmp_path, edit, message):
    bad = copy_shards(shards, tmp_path / "bad", edit)
    with pytest.raises(SystemExit, match=message):
        cli.main(args(bad, tmp_path / "run", "--steps", "1"))


def test_refuses_a_shard_whose_bytes_changed(shards, tmp_path):
    bad = copy_shards(shards, tmp_path / "bad")
    for part in (bad / "shards").glob("*.parquet"):  # whichever the first batch opens
        data = bytearray(part.read_bytes())
        data[100] ^= 0xFF
        part.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match=r"part-0000[01].parquet: sha256 [0-9a-f]+ does not match the manifest"):
        cli.main(args(bad, tmp_path / "run", "--steps", "2"))


def test_refuses_unknown_arguments_and_changed_settings_on_resume(shards, trained, tmp_path):
    with pytest.raises(SystemExit, match="unrecognized arguments: --bogus"):
        cli.main([*args(shards, tmp_path / "x", "--steps", "1"), "--bogus"])
    run = tmp_path / "copy"
    shutil.copytree(trained, run, symlinks=True)
    with pytest.raises(SystemExit, match="different settings.*batch_size"):
        cli.main(args(shards, run, "--steps", "8", "--batch-size", "3"))


def test_checkpoints_are_atomic_and_checked(trained, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained, run, symlinks=True)
    # a save killed half-way leaves a hidden directory that nothing reads
    (run / "checkpoints" / ".tmp-step-00000012").mkdir()
    (run / "checkpoints" / ".tmp-step-00000012" / "model.safetensors").write_bytes(b"partial")
    assert ckpt.latest(run).name == "step-00000008"
    cfg, weights, state = ckpt.load_model_weights(run)
    assert state["step"] == 8 and cfg["n_layers"] == 4 and "lm_head.weight" in weights
    # checkpoints hold no pickle: every file is JSON or safetensors
    for f in ckpt.latest(run).iterdir():
        assert f.suffix in (".json", ".safetensors")
    model = ckpt.latest(run) / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ckpt.CheckpointError, match="sha256"):
        ckpt.load_model_weights(run)


def test_grad_accumulation_matches_one_big_batch(shards, tmp_path):
    common = ["--steps", "2", "--val-every", "0", "--val-max-rows", "1"]
    assert cli.main(args(shards, tmp_path / "big", *common)) == 0
    acc = args(shards, tmp_path / "acc", *common, "--grad-accum", "2")
    acc[acc.index("--batch-size") + 1] = "1"
    assert cli.main(acc) == 0
    for a, b in zip(train_records(tmp_path / "big"), train_records(tmp_path / "acc")):
        assert a["target_tokens"] == b["target_tokens"]  # the same rows
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)


@pytest.mark.slow
def test_ddp_two_ranks_match_one_process(shards, tmp_path):
    """torchrun, 2 CPU ranks (gloo) x 1 row == 1 process x 2 rows: same rows, same loss."""
    common = ["--steps", "3", "--val-every", "0"]
    one = tmp_path / "one"
    assert cli.main(args(shards, one, *common)) == 0
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "bsm_model.cli", *args(shards, two, *common)]
    cmd[cmd.index("--batch-size") + 1] = "1"
    res = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = train_records(one), train_records(two)
    assert [r["target_tokens"] for r in a] == [r["target_tokens"] for r in b]
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-4)
    state = json.loads((two / "checkpoint" / "state.json").read_text())
    assert state["world_size"] == 2 and {"rng-rank00000.safetensors", "rng-rank00001.safetensors"} <= set(state["files"])
