"""Export a checkpoint as a Hugging Face model directory (``LlamaForCausalLM``, no remote code).

    bsm export --checkpoint runs/r3 --hf out/bsm-110m-hf
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> tok = AutoTokenizer.from_pretrained("out/bsm-110m-hf")
    >>> model = AutoModelForCausalLM.from_pretrained("out/bsm-110m-hf")
    >>> ids = tok("<bos><dna>atgaaagtg<sep><protein>MKV<eos>", return_tensors="pt").input_ids

Weights map one-to-one (the fused q|k|v and gate|up matrices are split by rows; RoPE already
uses the rotate-half layout of transformers' Llama, so no permutation). The config sets
rope_theta 100000, rms_norm_eps, hidden_act silu, no biases, tie_word_embeddings as trained.

The tokenizer (``tokenizer.json``, tokenizers' WordLevel) reads the vocabulary's text form:
nucleotides in lower case, amino acids in upper case, every special token (<bos>, <dna>, <sep>,
... including the reserved ids) written out and matched first; each remaining character is one
token, unknown characters become <unk>. It adds no tokens of its own: the text carries <bos>
and <eos>, so ids equal ``bsm_data.vocab.encode_sample``'s.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from safetensors.torch import save_file

from bsm_data.vocab import Vocab, load_vocab

from . import checkpoint as ckpt
from .model import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def hf_config(cfg: ModelConfig, vocab: Vocab, dtype: str = "float32") -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_base,  # transformers 4.x
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_base},  # transformers 5.x
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
        "bos_token_id": vocab.bos,
        "eos_token_id": vocab.eos,
        "pad_token_id": vocab.pad,
        "use_cache": True,
        "dtype": dtype,
        "torch_dtype": dtype,
    }


def hf_state_dict(tensors: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    d, inter = cfg.dim, cfg.intermediate_size
    out = {"model.embed_tokens.weight": tensors["tok_emb.weight"], "model.norm.weight": tensors["norm.weight"]}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = tensors["lm_head.weight"]
    for i in range(cfg.n_layers):
        src, dst = f"layers.{i}.", f"model.layers.{i}."
        q, k, v = tensors[src + "attn.wqkv.weight"].split(d, dim=0)
        gate, up = tensors[src + "mlp.w_gate_up.weight"].split(inter, dim=0)
        out.update({
            dst + "input_layernorm.weight": tensors[src + "attn_norm.weight"],
            dst + "self_attn.q_proj.weight": q,
            dst + "self_attn.k_proj.weight": k,
            dst + "self_attn.v_proj.weight": v,
            dst + "self_attn.o_proj.weight": tensors[src + "attn.wo.weight"],
            dst + "post_attention_layernorm.weight": tensors[src + "mlp_norm.weight"],
            dst + "mlp.gate_proj.weight": gate,
            dst + "mlp.up_proj.weight": up,
            dst + "mlp.down_proj.weight": tensors[src + "mlp.w_down.weight"],
        })
    return {k: v.contiguous() for k, v in out.items()}


def special_tokens(vocab: Vocab) -> list[str]:
    return [t["token"] for t in vocab.tokens if t["kind"] in ("special", "modality", "reserved")]


def tokenizer_json(vocab: Vocab) -> str:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab={t["token"]: t["id"] for t in vocab.tokens}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per letter
    tok.decoder = decoders.Fuse()  # decode without spaces between letters
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False, single_word=False, lstrip=False, rstrip=False)
                            for t in special_tokens(vocab)])
    return tok.to_str(pretty=True)


def tokenizer_files(vocab: Vocab, max_len: int) -> dict[str, str]:
    named = {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
             "sep_token": "<sep>", "mask_token": "<mask>"}
    extra = [f"<{m}>" for m in ("dna", "rna", "protein")]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **named,
        "additional_special_tokens": extra,
        "model_max_length": max_len,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }
    return {
        "tokenizer.json": tokenizer_json(vocab),
        "tokenizer_config.json": json.dumps(config, indent=1) + "\n",
        "special_tokens_map.json": json.dumps({**named, "additional_special_tokens": extra}, indent=1) + "\n",
    }


def model_card(cfg: ModelConfig, state: dict, vocab: Vocab) -> str:
    return f"""# BSM-style mixed-modal biological sequence model

Decoder-only Llama-architecture model over one vocabulary of DNA, RNA and protein tokens
({vocab.name} v{vocab.version}, {vocab.size} ids): {cfg.n_layers} layers, {cfg.n_heads} heads, width {cfg.dim},
context {cfg.max_seq_len}, RoPE base {cfg.rope_base:g}. Exported from step {state['step']} of a `bsm train` run.

Text form: nucleotides lower case, amino acids upper case, segments opened by a modality tag and
separated by `<sep>`:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(PATH)
model = AutoModelForCausalLM.from_pretrained(PATH)
ids = tok("<bos><dna>atgaaagtgtaa<sep><protein>MKV<eos>", return_tensors="pt").input_ids
```
"""


def export_hf(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *, dtype: str = "float32", force: bool = False) -> Path:
    """Write the Hugging Face directory atomically (temporary sibling, then rename)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}")
    mcfg_dict, tensors, state = ckpt.load_model_weights(checkpoint)
    cfg = ModelConfig.from_dict(mcfg_dict)
    vocab = load_vocab()
    if state["vocab"]["sha256"] != vocab.sha256:
        raise ckpt.CheckpointError(f"{checkpoint}: trained with vocabulary sha256 {state['vocab']['sha256'][:12]}…, this code has {vocab.sha256[:12]}…")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists and is not empty (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        hf = {k: v.to(DTYPES[dtype]) for k, v in hf_state_dict(tensors, cfg).items()}
        save_file(hf, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(hf_config(cfg, vocab, dtype), indent=1) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(
            {"bos_token_id": vocab.bos, "eos_token_id": vocab.eos, "pad_token_id": vocab.pad}, indent=1) + "\n")
        for name, text in tokenizer_files(vocab, cfg.max_seq_len).items():
            (tmp / name).write_text(text)
        (tmp / "README.md").write_text(model_card(cfg, state, vocab))
        old = None
        if out.exists():
            old = out.parent / f".old-{out.name}-{uuid.uuid4().hex[:8]}"
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
