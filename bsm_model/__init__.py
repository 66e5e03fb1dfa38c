"""BSM model, trainer and export. Reads only manifests and shards written by bsm_data.

- ``model``      the decoder (one file): configs tiny / bsm-110m / bsm-270m, per-document attention
- ``config``     TrainConfig, the paper's round presets, the LR schedule
- ``data``       manifest -> deterministic, resumable, rank-sliced batches; validation split
- ``train``      the training loop (single process or torchrun DDP)
- ``checkpoint`` safetensors + JSON checkpoints, atomic, exact resume
- ``metrics``    MFU, metrics JSONL, loss plot
- ``export``     Hugging Face LlamaForCausalLM directory + tokenizer
- ``cli``        ``bsm train`` / ``bsm export`` (``add_train_parsers``)

Nothing is imported here, so ``import bsm_model`` does not load torch.
"""
