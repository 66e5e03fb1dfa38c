"""The BSM decoder in one file: a Llama-style pre-norm transformer for mixed DNA/RNA/protein.

Paper (Xiang et al., §2.1, Table 2): decoder-only, RoPE with base 100,000, context 1024;
BSM-110M = 12 layers x 12 heads x 768, BSM-270M = 20 layers x 16 heads x 896. The paper does not
give the block internals; we use the Llama block (RMSNorm pre-norm, SwiGLU MLP, no biases) so a
checkpoint maps one-to-one onto ``transformers.LlamaForCausalLM`` (see ``export.py``):

    x = tok_emb[ids]
    for each layer:  x = x + Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))     n = RMSNorm
                     x = x + Wdown·(silu(Wgate·n(x)) * Wup·n(x))
    logits = lm_head(n(x))

Choices the paper leaves open, and why:
- MLP width: chosen so the parameter counts match Table 2 (2944 -> 109.7M, 3840 -> 270.7M;
  both multiples of 128 for tensor cores).
- Untied input/output embeddings (``LlamaForCausalLM``'s default, so the export needs no
  tied-weight handling). With 64 ids the embeddings are 0.05% of the model either way;
  ``tie_embeddings=True`` is supported and exported as ``tie_word_embeddings``.
- RoPE in the "rotate half" layout that Hugging Face Llama uses, so q/k weights export as-is.
- Fused projections (one matmul for q,k,v and one for gate,up): fewer, larger kernels; the
  export splits them back.

Attention is ``torch.nn.functional.scaled_dot_product_attention`` (flash kernels on CUDA).
Per-document masking (``Documents``): packed rows hold several documents; with a
``Documents`` passed to ``forward``, a token attends only to earlier tokens of its own
document and RoPE positions restart at 0 in each document, which is exactly how the exported
model sees one sample at inference. Backends (``attn_backend``):
  varlen  flash-attn's varlen kernel over the flattened batch (CUDA; default when installed)
  flex    FlexAttention with a document block mask, compiled (CUDA default without flash-attn)
  sdpa    causal attention per document (CPU default: skips cross-document blocks, 3.5x
          faster than a dense mask on CPU; shapes vary per batch, so not under torch.compile).
          On CPU in fp32 eager this is _CPUAttention: ATen's CPU flash kernel per query chunk,
          RoPE and attention in one autograd.Function (see the comment above it)
  mask    one SDPA call with a dense block-diagonal causal mask (static shapes; CPU with compile)
Pad positions after the last document are treated as part of it: they come last, so nothing
real attends to them, and their targets are ignored.

CPU training (eager, fp32) also uses hand-written backward passes for RMSNorm and SwiGLU
(``_RMSNorm``, ``_SwiGLU``): the same math with fewer passes over memory than autograd's
composition; benchmarks/bench_train.py measures the whole step against LlamaForCausalLM.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100  # target id that the loss skips (pads, document boundaries)


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 64  # schemas/vocab.v1.json
    n_layers: int = 12
    n_heads: int = 12
    dim: int = 768
    intermediate_size: int = 2944
    max_seq_len: int = 1024
    rope_base: float = 100_000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    init_std: float = 0.02

    def __post_init__(self):
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"dim {self.dim} must split into {self.n_heads} heads of even size")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return cls(**d)


CONFIGS = {
    # CPU tests and benchmarks: same code paths, about 0.8M parameters.
    "tiny": ModelConfig(n_layers=4, n_heads=4, dim=128, intermediate_size=384),
    "bsm-110m": ModelConfig(n_layers=12, n_heads=12, dim=768, intermediate_size=2944),
    "bsm-270m": ModelConfig(n_layers=20, n_heads=16, dim=896, intermediate_size=3840),
}


# ----------------------------------------------------------------------------------------------
# Document layout of a packed batch


@dataclass
class Documents:
    """Where documents sit in a packed (B, T) batch; built on the CPU by the data loader.

    ``ids[b, t]`` is the document index of position t inside row b (pad tail = last document),
    ``positions[b, t]`` the position inside that document (RoPE), ``cu_seqlens`` the document
    offsets in the flattened batch (flash-attn varlen), ``max_seqlen`` the longest document and
    ``spans`` the (start, end) of each document per row.
    """

    ids: torch.Tensor
    positions: torch.Tensor
    cu_seqlens: torch.Tensor
    max_seqlen: int
    spans: list

    @classmethod
    def from_doc_starts(cls, doc_starts: list, seq_len: int) -> "Documents":
        B = len(doc_starts)
        ids = np.zeros((B, seq_len), dtype=np.int64)
        starts = np.zeros((B, seq_len), dtype=np.int64)
        cu, spans = [0], []
        for b, s in enumerate(doc_starts):
            s = np.asarray(s, dtype=np.int64)
            ids[b, s[1:]] = 1
            starts[b, s] = s
            cu.extend((b * seq_len + s[1:]).tolist())
            cu.append((b + 1) * seq_len)
            bounds = [*s.tolist(), seq_len]
            spans.append(list(zip(bounds[:-1], bounds[1:])))
        ids = np.cumsum(ids, axis=1)
        positions = np.arange(seq_len) - np.maximum.accumulate(starts, axis=1)
        cu = np.asarray(cu, dtype=np.int32)
        return cls(torch.from_numpy(ids), torch.from_numpy(positions), torch.from_numpy(cu), int(np.diff(cu).max()), spans)

    def to(self, device, non_blocking: bool = False) -> "Documents":
        return Documents(
            self.ids.to(device, non_blocking=non_blocking),
            self.positions.to(device, non_blocking=non_blocking),
            self.cu_seqlens.to(device, non_blocking=non_blocking),
            self.max_seqlen,
            self.spans,
        )


@functools.lru_cache(maxsize=None)
def _flash_varlen():
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        return None
    return flash_attn_varlen_func


@functools.lru_cache(maxsize=None)
def _flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False) if torch.cuda.is_available() else flex_attention


def resolve_attn_backend(backend: str, device: torch.device | str) -> str:
    """auto -> varlen (CUDA + flash-attn installed), flex (CUDA), sdpa (CPU)."""
    device = torch.device(device)
    if backend == "auto":
        if device.type == "cuda":
            return "varlen" if _flash_varlen() is not None else "flex"
        return "sdpa"
    if backend == "varlen" and (device.type != "cuda" or _flash_varlen() is None):
        raise RuntimeError("attention backend varlen needs CUDA and the flash-attn package")
    if backend not in ("sdpa", "mask", "flex", "varlen"):
        raise ValueError(f"unknown attention backend {backend!r}")
    return backend


@dataclass
class AttnMask:
    """What every layer's attention needs, prepared once per forward (outside compiled blocks)."""

    kind: str  # causal | sdpa | mask | flex | varlen | cpu
    spans: list | None = None  # sdpa
    mask: torch.Tensor | None = None  # mask: additive (B, 1, T, T)
    block_mask: object = None  # flex: BlockMask
    cu_seqlens: torch.Tensor | None = None  # varlen
    max_seqlen: int = 0
    tiles: list | None = None  # cpu: see cpu_tiles
    rope: torch.Tensor | None = None  # cpu: cos + i sin per position, (B or 1, T, 1, 1, D/2)


def prepare_attention(docs: Documents | None, backend: str, B: int, T: int, device, dtype, eager: bool = True) -> AttnMask:
    if eager and backend == "sdpa" and torch.device(device).type == "cpu" and dtype in (torch.float32, torch.float64):
        return AttnMask("cpu", tiles=cpu_tiles(docs.spans if docs is not None else [[(0, T)]] * B, T, dtype))  # _CPUAttention
    if docs is None:
        return AttnMask("causal")
    if backend == "varlen" and dtype in (torch.float16, torch.bfloat16):  # flash-attn has no fp32 kernel
        return AttnMask("varlen", cu_seqlens=docs.cu_seqlens, max_seqlen=docs.max_seqlen)
    if backend == "flex":
        from torch.nn.attention.flex_attention import create_block_mask

        ids = docs.ids

        def mask_mod(b, h, qi, ki):
            return (ids[b, qi] == ids[b, ki]) & (qi >= ki)

        return AttnMask("flex", block_mask=create_block_mask(mask_mod, B, None, T, T, device=device))
    if backend == "mask":  # additive float mask: the CPU kernels run it 2x faster than a bool one
        keep = (docs.ids[:, :, None] == docs.ids[:, None, :]) & torch.ones(T, T, dtype=torch.bool, device=device).tril()
        mask = torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill_(~keep, float("-inf"))
        return AttnMask("mask", mask=mask[:, None])
    return AttnMask("sdpa", spans=docs.spans)


def attention(q, k, v, am: AttnMask) -> torch.Tensor:
    """Causal attention over (B, T, H, D) tensors, within documents unless ``am.kind`` is causal."""
    B, T, H, D = q.shape
    if am.kind == "varlen":
        out = _flash_varlen()(q.reshape(B * T, H, D), k.reshape(B * T, H, D), v.reshape(B * T, H, D),
                              am.cu_seqlens, am.cu_seqlens, am.max_seqlen, am.max_seqlen, causal=True)
        return out.view(B, T, H, D)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D)
    if am.kind == "causal":
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    elif am.kind == "flex":
        out = _flex_attention()(q, k, v, block_mask=am.block_mask)
    elif am.kind == "mask":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=am.mask.to(q.dtype))
    else:  # sdpa off the CPU: one causal call per document
        rows = []
        for b, spans in enumerate(am.spans):
            parts = [F.scaled_dot_product_attention(q[b : b + 1, :, s:e], k[b : b + 1, :, s:e], v[b : b + 1, :, s:e], is_causal=True)
                     for s, e in spans]
            rows.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=2))
        out = torch.cat(rows, dim=0)
    return out.transpose(1, 2)


# CPU training path (fp32, eager). Per-document causal attention goes straight to ATen's CPU
# flash kernel (what F.scaled_dot_product_attention runs on CPU), inside one autograd.Function
# that also applies RoPE, so that
# - the kernel's causal skipping is not wasted: it works in key blocks of 512 and query blocks
#   of 256 (T >= 768) or 32-64 rows, so a causal 1024 x 1024 call computes 3/4 of the square and
#   a 512 x 512 one all of it. We cut each document into query chunks of CPU_ATTN_CHUNK rows,
#   each attending only to keys up to its own end (the diagonal block masked by a slice of one
#   additive causal table): little more than the triangle, ~20% less attention time;
# - rows with the same document layout (all single-document rows) share each kernel call;
# - the backward writes q, k, v gradients straight into one (B, T, 3, H, D) buffer, where
#   autograd would allocate a zero-filled copy per sliced view and sum them, then concatenate
#   the RoPE halves and the fused-projection thirds (~8% of a training step in the profile);
# - RoPE is one complex multiply: the projection emits q and k with each head's dimensions in
#   Meta's interleaved-pair order (i, i + D/2 adjacent; the permutation transformers' Llama
#   conversion applies), where rotating pairs is multiplying by e^(i angle). Attention scores
#   are q.k summed over all dimensions, so the order does not change them; v stays as it is.
#   Rotate-half works on strided halves of D/2 = 16 floats: 10x slower (short inner loops).
# Same math as SDPA over rotate-half RoPE: equal to float rounding (tests/test_model.py).
CPU_ATTN_CHUNK = 128  # query rows per kernel call (below 192 rows the kernel uses 32-row blocks)
_sdpa_cpu = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_sdpa_cpu_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


@functools.lru_cache(maxsize=8)
def _causal_bias(n: int, dtype: torch.dtype) -> torch.Tensor:
    """(n, n) additive causal mask: 0 on and below the diagonal, -inf above."""
    return torch.full((n, n), float("-inf"), dtype=dtype).triu_(1)


@functools.lru_cache(maxsize=8)
def _pair_order(n_heads: int, head_dim: int, device: torch.device) -> torch.Tensor:
    """wqkv row order putting q and k dimensions (i, i + D/2) of each head next to each other."""
    head = torch.arange(head_dim).view(2, head_dim // 2).t().flatten()  # 0, D/2, 1, D/2 + 1, ...
    qk = (torch.arange(2 * n_heads)[:, None] * head_dim + head).flatten()
    return torch.cat([qk, torch.arange(2 * n_heads * head_dim, 3 * n_heads * head_dim)]).to(device)


def cpu_tiles(spans: list, T: int, dtype: torch.dtype, chunk: int | None = None) -> list:
    """Kernel calls for per-row document spans: (b0, b1, s, e, cs, ce, bias) = rows b0:b1 (equal
    spans), document s:e, queries cs:ce against keys s:ce; bias None means a plain causal call
    (the first chunk). A document's chunks come last-first, so in the backward the first call
    covers all its keys and writes their gradients, and the later ones add to a prefix."""
    chunk = chunk or CPU_ATTN_CHUNK
    bias = _causal_bias(T, dtype) if T > chunk else None
    tiles, b0 = [], 0
    for b in range(1, len(spans) + 1):
        if b < len(spans) and list(spans[b]) == list(spans[b0]):
            continue
        bounds = [x for span in spans[b0] for x in span]
        if not bounds or bounds[0] != 0 or bounds[-1] != T or any(a != b for a, b in zip(bounds[1:-1:2], bounds[2::2])):
            # the kernel outputs are left uninitialised where no document is: refuse, never read garbage
            raise ValueError(f"document spans {spans[b0]} of row {b0} do not tile [0, {T})")
        for s, e in spans[b0]:
            for cs in reversed(range(s, e, chunk)):
                ce = min(cs + chunk, e)
                tiles.append((b0, b, s, e, cs, ce, None if cs == s else bias[cs - s : ce - s, : ce - s]))
        b0 = b
    return tiles


def _as_complex(x: torch.Tensor) -> torch.Tensor:
    return torch.view_as_complex(x.unflatten(-1, (-1, 2)))


class _CPUAttention(torch.autograd.Function):
    """qkv (B, T, 3, H, D), q and k in pair order -> RoPE (multiply by ``rope``, complex,
    broadcast against (B, T, 2, H, D/2)) -> causal attention per tile -> (B, T, H, D)."""

    @staticmethod
    def forward(ctx, qkv, rope, tiles):
        B, T, _, H, D = qkv.shape
        qk = qkv.new_empty(B, T, 2, H, D)
        torch.mul(_as_complex(qkv[:, :, :2]), rope, out=_as_complex(qk))
        q, k, v = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
        out, lse = qkv.new_empty(B, T, H, D), []
        for b0, b1, s, _, cs, ce, bias in tiles:
            o, l = _sdpa_cpu(q[b0:b1, :, cs:ce], k[b0:b1, :, s:ce], v[b0:b1, :, s:ce], 0.0, bias is None, attn_mask=bias)
            out[b0:b1, cs:ce] = o.transpose(1, 2)
            lse.append(l)
        ctx.save_for_backward(qkv, qk, out, rope, *lse)
        ctx.tiles = tiles
        return out

    @staticmethod
    def backward(ctx, grad):
        qkv, qk, out, rope, *lse = ctx.saved_tensors
        q, k, v = qk[:, :, 0].transpose(1, 2), qk[:, :, 1].transpose(1, 2), qkv[:, :, 2].transpose(1, 2)
        grad_qkv, grad_qk = torch.empty_like(qkv), torch.empty_like(qk)  # every element gets written
        gq, gk, gv = grad_qk[:, :, 0], grad_qk[:, :, 1], grad_qkv[:, :, 2]
        for (b0, b1, s, e, cs, ce, bias), l in zip(ctx.tiles, lse):
            dq, dk, dv = _sdpa_cpu_backward(grad[b0:b1, cs:ce].transpose(1, 2), q[b0:b1, :, cs:ce], k[b0:b1, :, s:ce],
                                            v[b0:b1, :, s:ce], out[b0:b1, cs:ce].transpose(1, 2), l, 0.0, bias is None,
                                            attn_mask=bias)
            gq[b0:b1, cs:ce] = dq.transpose(1, 2)
            if ce == e:  # the document's last chunk (processed first) sees all its keys
                gk[b0:b1, s:ce] = dk.transpose(1, 2)
                gv[b0:b1, s:ce] = dv.transpose(1, 2)
            else:
                gk[b0:b1, s:ce] += dk.transpose(1, 2)
                gv[b0:b1, s:ce] += dv.transpose(1, 2)
        torch.mul(_as_complex(grad_qk), rope.conj(), out=_as_complex(grad_qkv[:, :, :2]))  # RoPE is a rotation
        return grad_qkv, None, None


# ----------------------------------------------------------------------------------------------
# The network


def rope_tables(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (max_seq_len, head_dim/2), computed exactly as transformers' Llama does."""
    inv_freq = 1.0 / (cfg.rope_base ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float) / cfg.head_dim))
    angles = torch.arange(cfg.max_seq_len, dtype=torch.float)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE: pairs (i, i + D/2) rotate together (the Hugging Face Llama layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.wqkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)  # rows: q | k | v
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin, am: AttnMask):
        B, T, _ = x.shape
        if am.kind == "cpu":
            w = self.wqkv.weight[_pair_order(self.n_heads, self.head_dim, x.device)]
            qkv = F.linear(x, w).view(B, T, 3, self.n_heads, self.head_dim)
            out = _CPUAttention.apply(qkv, am.rope, am.tiles)
        else:
            qkv = self.wqkv(x).view(B, T, 3, self.n_heads, self.head_dim)
            q, k = apply_rope(qkv[:, :, :2], cos.to(qkv.dtype), sin.to(qkv.dtype)).unbind(2)
            out = attention(q, k, qkv[:, :, 2], am)
        return self.wo(out.reshape(B, T, -1))


class _SwiGLU(torch.autograd.Function):
    """silu(gate) * up over the two halves of the fused projection; the backward writes both
    halves' gradients into one buffer (autograd would build them apart, then concatenate)."""

    @staticmethod
    def forward(ctx, gate_up):
        gate, up = gate_up.chunk(2, dim=-1)
        act = F.silu(gate)
        ctx.save_for_backward(gate_up, act)
        return act * up

    @staticmethod
    def backward(ctx, grad):
        gate_up, act = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        grad_gate_up = torch.empty_like(gate_up)
        grad_gate, grad_up = grad_gate_up.chunk(2, dim=-1)
        torch.mul(grad, act, out=grad_up)
        torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=grad_gate)
        return grad_gate_up


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w_gate_up = nn.Linear(cfg.dim, 2 * cfg.intermediate_size, bias=False)  # rows: gate | up
        self.w_down = nn.Linear(cfg.intermediate_size, cfg.dim, bias=False)

    def forward(self, x):
        gate_up = self.w_gate_up(x)
        if _cpu_eager(gate_up):
            return self.w_down(_SwiGLU.apply(gate_up))
        gate, up = gate_up.chunk(2, dim=-1)
        return self.w_down(F.silu(gate) * up)


class _RMSNorm(torch.autograd.Function):
    """y = x / rms(x) * w. On CPU F.rms_norm is a composition of elementwise ops, and its
    autograd backward is slow: 7.0 ms fwd+bwd at 8 x 1024 x 128 against 2.8 ms here."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True).add_(eps))
        xr = x * r
        ctx.save_for_backward(xr, weight, r)
        return xr * weight

    @staticmethod
    def backward(ctx, grad):
        xr, weight, r = ctx.saved_tensors
        grad_w = (grad * xr).reshape(-1, xr.shape[-1]).sum(0)
        gw = grad * weight
        # d/dx of (x r) w: r (gw - xr mean(gw xr))
        return gw.addcmul_(xr, (gw * xr).mean(-1, keepdim=True), value=-1).mul_(r), grad_w, None


class RMSNorm(nn.Module):
    """nn.RMSNorm's parameters and math, with the CPU backward above."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        if _cpu_eager(x):
            return _RMSNorm.apply(x, self.weight, self.eps)
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


def _cpu_eager(x: torch.Tensor) -> bool:
    """Use the hand-written CPU backward passes (compiled code fuses its own; CUDA has kernels)."""
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, am: AttnMask):
        x = x + self.attn(self.attn_norm(x), cos, sin, am)
        return x + self.mlp(self.mlp_norm(x))


class BSM(nn.Module):
    def __init__(self, cfg: ModelConfig, attn_backend: str = "auto"):
        super().__init__()
        self.cfg = cfg
        self.attn_backend = attn_backend  # resolved against the input's device in forward
        self.blocks_compiled = False  # compile_blocks: keep the attention paths that compile
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        cos, sin = rope_tables(cfg)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02) everywhere; residual output projections scaled by 1/sqrt(2 n_layers) (GPT-2)."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("wo.weight", "w_down.weight")):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.cfg.n_layers))
            else:
                nn.init.normal_(p, 0.0, std)

    def compile_blocks(self, **kwargs) -> None:
        """torch.compile each block in place (as torchtitan does): the blocks are identical, so
        one compiled graph serves all; attention metadata is prepared outside, in eager code."""
        for layer in self.layers:
            layer.compile(**kwargs)
        self.blocks_compiled = True

    def num_params(self, *, matmul_only: bool = False) -> int:
        """All parameters; with matmul_only, without the input embedding (a lookup, not a matmul)."""
        n = sum(p.numel() for p in self.parameters())
        if matmul_only and not self.cfg.tie_embeddings:
            n -= self.tok_emb.weight.numel()
        return n

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None, *,
                docs: Documents | None = None, reduction: str = "mean"):
        """Logits (B, T, vocab) and, with ``targets`` (IGNORE = skip), the cross-entropy loss
        (``reduction`` mean / sum / none as in F.cross_entropy; none gives (B, T))."""
        B, T = input_ids.shape
        if T > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's context {self.cfg.max_seq_len}")
        x = self.tok_emb(input_ids)
        if docs is None:
            cos, sin = self.rope_cos[None, :T, None, None], self.rope_sin[None, :T, None, None]
        else:
            cos, sin = self.rope_cos[docs.positions][:, :, None, None], self.rope_sin[docs.positions][:, :, None, None]
        backend = resolve_attn_backend(self.attn_backend, input_ids.device)
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        eager = not (self.blocks_compiled or torch.compiler.is_compiling())
        am = prepare_attention(docs, backend, B, T, input_ids.device, dtype, eager)
        if am.kind == "cpu":
            am.rope = torch.complex(cos, sin)
        for layer in self.layers:
            x = layer(x, cos, sin, am)
        logits = self.lm_head(self.norm(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(B * T, -1), targets.reshape(B * T), ignore_index=IGNORE, reduction=reduction)
        return logits, loss.view(B, T) if reduction == "none" else loss
