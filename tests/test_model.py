"""The model (configs, per-document attention, causality), batches and targets, LR schedules."""
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bsm_data.vocab import encode_sample, load_vocab
from bsm_model.config import ROUNDS, LRSchedule, TrainConfig
from bsm_model.data import MODALITY_NAMES, TrainData, make_batch
from bsm_model.model import BSM, CONFIGS, IGNORE, Documents, ModelConfig, resolve_attn_backend

pytestmark = pytest.mark.usefixtures("one_thread")





@pytest.fixture(scope="module")
def shards(small_shards):
    return small_shards


@pytest.fixture(scope="module")
def multi_doc_rows(shards):
    data = TrainData(shards, val_fraction=0.0)
    tokens, starts, n_tokens = data.train.gather(np.arange(len(data.train)))
    keep = [i for i, s in enumerate(starts) if len(s) >= 2][:2]
    assert len(keep) == 2, "the two-file build has rows holding several documents"
    return tokens[keep], [starts[i] for i in keep], n_tokens[keep]


MICRO = ModelConfig(n_layers=2, n_heads=2, dim=32, intermediate_size=64)  # masking logic needs no width


def tiny_model(seed=0, cfg=MICRO, **kw):
    torch.manual_seed(seed)
    return BSM(cfg, **kw).eval()


@pytest.mark.parametrize("name,layers,heads,dim,params", [("bsm-110m", 12, 12, 768, 110e6), ("bsm-270m", 20, 16, 896, 270e6)])
def test_paper_configs_match_table_2(name, layers, heads, dim, params):
    cfg = CONFIGS[name]
    assert (cfg.n_layers, cfg.n_heads, cfg.dim, cfg.max_seq_len, cfg.rope_base) == (layers, heads, dim, 1024, 100_000.0)
    assert cfg.vocab_size == load_vocab().size == 64
    with torch.device("meta"):
        n = BSM(cfg).num_params()
    assert abs(n - params) / params < 0.01, n


def test_documents_layout():
    d = Documents.from_doc_starts([[0, 3, 7], [0]], 10)
    assert d.ids.tolist() == [[0, 0, 0, 1, 1, 1, 1, 2, 2, 2], [0] * 10]
    assert d.positions.tolist() == [[0, 1, 2, 0, 1, 2, 3, 0, 1, 2], list(range(10))]
    assert d.cu_seqlens.tolist() == [0, 3, 7, 10, 20] and d.max_seqlen == 10


def test_packed_documents_see_only_themselves(multi_doc_rows):
    """With per-document masking, each document's logits in a packed row equal the logits of
    that document run alone from position 0: no attention across documents, RoPE restarts."""
    tokens, starts, n_tokens = multi_doc_rows
    model = tiny_model()
    x = torch.from_numpy(tokens.astype(np.int64))
    with torch.no_grad():
        packed, _ = model(x, docs=Documents.from_doc_starts(starts, x.shape[1]))
        unmasked, _ = model(x)
        for b in range(len(x)):
            bounds = [*starts[b].tolist(), int(n_tokens[b])]
            for s, e in zip(bounds[:-1], bounds[1:]):
                alone, _ = model(x[b : b + 1, s:e])
                torch.testing.assert_close(packed[b, s:e], alone[0], atol=1e-5, rtol=1e-5)
            # without the mask, later documents do see earlier ones
            s2 = bounds[1]
            assert (unmasked[b, s2:bounds[2]] - packed[b, s2:bounds[2]]).abs().max() > 1e-3


@pytest.mark.parametrize("backend", ["mask", "flex"])
def test_document_attention_backends_agree(multi_doc_rows, backend):
    """sdpa (a call per document), mask (dense block-diagonal) and flex (FlexAttention) give the
    same logits, and sdpa and mask the same gradients (flex has no CPU backward; varlen needs
    CUDA and flash-attn)."""
    tokens, starts, _ = multi_doc_rows
    x = torch.from_numpy(tokens.astype(np.int64))
    targets = torch.roll(x, -1, 1)
    grad = backend != "flex"
    results = []
    for name in ("sdpa", backend):
        model = tiny_model(attn_backend=name)
        with warnings.catch_warnings(), torch.set_grad_enabled(grad):
            warnings.simplefilter("ignore")  # flex_attention warns when not compiled (CPU eager)
            logits, loss = model(x, targets, docs=Documents.from_doc_starts(starts, x.shape[1]))
            if grad:
                loss.backward()
        results.append((logits.detach(), model.layers[0].attn.wqkv.weight.grad))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    if grad:
        torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-4)


def test_cpu_attention_equals_sdpa_per_document():
    """The CPU training path (RoPE + per-document attention in query chunks, rows with equal
    layouts batched, q/k in pair order) gives the outputs and gradients of rotate-half RoPE and
    one causal SDPA call per document, and passes gradcheck (float64)."""
    from bsm_model import model as m

    B, T, H, D = 4, 40, 2, 8
    cfg = ModelConfig(n_layers=1, n_heads=H, dim=H * D, intermediate_size=8, max_seq_len=T)
    torch.manual_seed(0)
    qkv = torch.randn(B, T, 3, H, D, dtype=torch.float64, requires_grad=True)
    spans = [[(0, 40)], [(0, 40)], [(0, 13), (13, 31), (31, 40)], [(0, 5), (5, 40)]]
    positions = Documents.from_doc_starts([[s for s, _ in row] for row in spans], T).positions
    cos, sin = (t.double()[positions][:, :, None, None] for t in m.rope_tables(cfg))
    tiles = m.cpu_tiles(spans, T, torch.float64, chunk=8)
    assert len({(t[0], t[1]) for t in tiles}) == 3  # rows 0 and 1 share their calls
    order = m._pair_order(H, D, torch.device("cpu"))

    def fused(qkv):
        return m._CPUAttention.apply(qkv.flatten(2)[..., order].view(B, T, 3, H, D), torch.complex(cos, sin), tiles)

    def reference(qkv):
        q, k = m.apply_rope(qkv[:, :, :2], cos, sin).unbind(2)
        return m.attention(q, k, qkv[:, :, 2], m.AttnMask("sdpa", spans=spans))

    grad = torch.randn(B, T, H, D, dtype=torch.float64)
    out, ref = fused(qkv), reference(qkv)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.autograd.grad(out, qkv, grad)[0], torch.autograd.grad(ref, qkv, grad)[0], atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(fused, (qkv,), fast_mode=True)


def test_cpu_norm_and_swiglu_backward():
    from bsm_model import model as m

    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: m._RMSNorm.apply(x, w, 1e-5), (x, w))
    torch.testing.assert_close(m._RMSNorm.apply(x, w, 1e-5), torch.nn.functional.rms_norm(x, (8,), w, 1e-5))
    gate_up = torch.randn(2, 5, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m._SwiGLU.apply, (gate_up,))
    gate, up = gate_up.chunk(2, -1)
    torch.testing.assert_close(m._SwiGLU.apply(gate_up), torch.nn.functional.silu(gate) * up)


def test_attention_backend_resolution():
    assert resolve_attn_backend("auto", "cpu") == "sdpa"
    with pytest.raises(RuntimeError, match="flash-attn"):
        resolve_attn_backend("varlen", "cpu")


def test_causal_and_loss_ignores_masked_targets():
    model = tiny_model()
    x = torch.randint(16, 57, (1, 64))
    y = x.clone()
    y[0, 40] = 30 if int(x[0, 40]) != 30 else 31
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
        assert torch.equal(a[0, :40], b[0, :40]) and not torch.equal(a[0, 40:], b[0, 40:])
        targets = torch.full_like(x, IGNORE)
        targets[0, :10] = x[0, 1:11]
        _, loss = model(x, targets)
        ref = torch.nn.functional.cross_entropy(a[0, :10], x[0, 1:11])
    torch.testing.assert_close(loss, ref)


def _row(segments_per_doc, seq_len=48):
    vocab = load_vocab()
    docs = [encode_sample(vocab, segs) for segs in segments_per_doc]
    tokens = np.zeros((1, seq_len), dtype=np.uint8)
    starts, pos = [], 0
    for d in docs:
        starts.append(pos)
        tokens[0, pos : pos + len(d)] = d
        pos += len(d)
    return tokens, [np.array(starts, dtype=np.int32)], np.array([pos])


def test_targets_and_modalities_of_a_packed_row():
    vocab = load_vocab()
    tokens, starts, n = _row([[("dna", "ACGT"), ("protein", "MK")], [("rna", "ACGU")]])
    end1 = int(starts[0][1])  # first document: <bos><dna>acgt<sep><protein>MK<eos> = 11 tokens
    assert end1 == 11
    b = make_batch(tokens, starts, n, doc_mask=True)
    t, tok = b.targets[0].tolist(), tokens[0].astype(int).tolist()
    for i in range(len(t)):
        if i == end1 - 1 or i + 1 >= n[0]:
            assert t[i] == IGNORE, i  # <eos> -> next <bos>, and padding
        else:
            assert t[i] == tok[i + 1], i
    names = [MODALITY_NAMES[m] if t[i] != IGNORE else None for i, m in enumerate(b.modality[0].tolist())]
    # targets: <dna> a c g t <sep> | <protein> M K <eos> | ... <rna> a c g u <eos>
    assert names[:10] == ["dna"] * 5 + ["dna"] + ["protein"] * 4
    assert names[end1 : end1 + 6] == ["rna"] * 6
    assert b.docs is not None and b.docs.positions[0, end1].item() == 0
    assert b.n_targets == sum(x != IGNORE for x in t)

    plain = make_batch(tokens, starts, n, doc_mask=False)
    assert plain.docs is None
    assert plain.targets[0, end1 - 1].item() == vocab.bos
    assert MODALITY_NAMES[plain.modality[0, end1 - 1].item()] == "other"

    single = make_batch(*_row([[("protein", "MKV")]]), doc_mask=True)
    assert single.docs is None  # one document per row: plain causal attention, same result


def test_lr_schedules_follow_the_paper_rounds():
    for r, p in ROUNDS.items():
        s = LRSchedule(p["lr"], p["min_lr"], 100, 0, p["decay"])
        lrs = [s(i) for i in range(100)]
        assert lrs[0] == p["lr"] and all(a >= b for a, b in zip(lrs, lrs[1:]))
        assert s(100) == pytest.approx(p["min_lr"], abs=1e-15)
    assert LRSchedule(1e-3, 0.0, 100, 10, "cosine")(4) == pytest.approx(5e-4)
    cfg = TrainConfig(manifest="m", out="o", round=3, lr=5e-6)
    cfg.apply_round({"lr"})
    assert (cfg.lr, cfg.min_lr, cfg.decay) == (5e-6, 0.0, "linear")
    cfg = TrainConfig(manifest="m", out="o", round=1)
    cfg.apply_round(set())
    cfg.resolve_warmup(1000)
    assert (cfg.lr, cfg.min_lr, cfg.warmup_steps) == (2e-5, 1e-5, 10)


def test_cpu_attention_refuses_spans_that_do_not_tile_the_row():
    from bsm_model.model import cpu_tiles

    with pytest.raises(ValueError, match="do not tile"):
        cpu_tiles([[(2, 7), (7, 20)]], 20, torch.float32)  # starts at 2
    with pytest.raises(ValueError, match="do not tile"):
        cpu_tiles([[(0, 7), (8, 20)]], 20, torch.float32)  # a gap
    assert cpu_tiles([[(0, 7), (7, 20)]], 20, torch.float32, chunk=8)[0][:6] == (0, 1, 0, 7, 0, 7)
