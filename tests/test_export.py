"""bsm export: the Hugging Face directory loads with transformers' Auto classes (no remote code),
gives our logits, and its tokenizer gives bsm_data.vocab's ids on real samples."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

transformers = pytest.importorskip("transformers")

from bsm_data.vocab import encode_sample, load_vocab  # noqa: E402
from bsm_model import checkpoint as ckpt  # noqa: E402
from bsm_model import cli  # noqa: E402
from bsm_model.data import TrainData  # noqa: E402
from bsm_model.export import export_hf  # noqa: E402
from bsm_model.model import BSM, CONFIGS, Documents  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_shards):
    base = tmp_path_factory.mktemp("export")
    shards = Path(small_shards)
    run = base / "run"
    assert cli.main(["train", "--manifest", str(shards), "--out", str(run), "--config", "tiny", "--steps", "3",
                     "--batch-size", "2", "--lr", "1e-2", "--val-fraction", "0.02", "--val-max-rows", "2", "--threads", "1"]) == 0
    hf = base / "hf"
    assert cli.main(["export", "--checkpoint", str(run), "--hf", str(hf)]) == 0
    return shards, run, hf


def ours_from(run):
    cfg, weights, _ = ckpt.load_model_weights(run)
    model = BSM(CONFIGS["tiny"])
    assert model.cfg.to_dict() == cfg
    ckpt.apply_model_weights(model, weights)
    return model.eval()


def text_form(segments):
    return "<bos>" + "<sep>".join(f"<{m}>" + (s.upper() if m == "protein" else s.lower()) for m, s in segments) + "<eos>"


def test_hf_model_loads_and_matches_our_logits(exported):
    shards, run, hf_dir = exported
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "auto_map" not in config
    assert (config["rope_theta"], config["hidden_act"], config["tie_word_embeddings"]) == (100000.0, "silu", False)
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    ours = ours_from(run)
    data = TrainData(str(shards), val_fraction=0.0)
    multi = [i for i in range(len(data.train)) if len(data.train.gather(np.array([i]))[1][0]) > 1][:1]
    tokens, starts, n_tokens = data.train.gather(np.array([0, 100, *multi]))  # two rows, one with several documents
    x = torch.from_numpy(tokens.astype(np.int64))
    with torch.no_grad():
        a, _ = ours(x)  # whole packed rows, causal
        b = hf(x).logits
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        # one document at a time, as a user runs it; our training view is the packed row with
        # per-document attention, which must give the same logits
        packed, _ = ours(x, docs=Documents.from_doc_starts(starts, x.shape[1]))
        for r in range(len(x)):
            bounds = [*starts[r].tolist(), int(n_tokens[r])]
            for s, e in zip(bounds[:-1], bounds[1:]):
                alone = hf(x[r : r + 1, s:e]).logits[0]
                torch.testing.assert_close(packed[r, s:e], alone, atol=1e-5, rtol=0)


def test_tokenizer_gives_our_ids_on_real_samples(exported):
    shards, _, hf_dir = exported
    vocab = load_vocab()
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    samples = [s for f in sorted((shards / "samples").glob("*.parquet")) for s in pq.read_table(f).column("segments").to_pylist()]
    assert len(samples) > 200
    for segments in samples:
        segs = [(s["modality"], s["sequence"]) for s in segments]
        want = encode_sample(vocab, segs).tolist()
        text = text_form(segs)
        assert tok(text).input_ids == want
        assert tok.decode(want) == text
    assert {m: tok.convert_tokens_to_ids(f"<{m}>") for m in ("dna", "rna", "protein")} == {m: vocab.tag(m) for m in ("dna", "rna", "protein")}
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.sep_token_id, tok.unk_token_id, tok.mask_token_id) == (1, 2, 0, 3, 4, 5)
    assert tok("<dna>ac gt!").input_ids == [6, 16, 17, 4, 18, 19, 4]  # unknown characters are <unk>
    assert tok.decode(tok("<bos><protein>MK<eos>").input_ids, skip_special_tokens=True) == "MK"


def test_tied_embeddings_export_and_bf16(tmp_path):
    cfg = CONFIGS["tiny"].__class__(**{**CONFIGS["tiny"].to_dict(), "tie_embeddings": True})
    torch.manual_seed(1)
    model = BSM(cfg)
    opt = torch.optim.AdamW(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    state = {"model_config": cfg.to_dict(), "vocab": load_vocab().describe()}
    ckpt.save(tmp_path / "run", step=1, model=model, optimizer=opt, param_names=names, state=state)
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert hf.config.tie_word_embeddings
    x = torch.randint(16, 57, (1, 50))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x)[0], hf(x).logits, atol=1e-5, rtol=0)
    with pytest.raises(FileExistsError):
        export_hf(tmp_path / "run", out)
    export_hf(tmp_path / "run", out, dtype="bfloat16", force=True)
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))
