"""Training configuration: one dataclass, the paper's three round presets, and the LR schedule.

Round presets (paper §2.3: "the learning rate decays from 2e-5 to 1e-5 in the first round, from
1e-5 to 1e-7 in the second, and from 1e-6 to 0 in the third"). The paper names neither the decay
shape nor a warmup; our choice, overridable with --lr/--min-lr/--decay/--warmup-steps:

  round  lr     min_lr  decay   warmup                       why
  1      2e-5   1e-5    cosine  1% of steps (at most 2000)   from scratch: warm up the optimiser moments
  2      1e-5   1e-7    cosine  0                            continues round 1's weights
  3      1e-6   0       linear  0                            annealing, as in the paper's data-mix runs

Rounds 2 and 3 start from the previous round's weights (--init-from) with fresh optimizer state
and their own schedule.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

ROUNDS = {
    1: {"lr": 2e-5, "min_lr": 1e-5, "decay": "cosine", "warmup_fraction": 0.01},
    2: {"lr": 1e-5, "min_lr": 1e-7, "decay": "cosine", "warmup_fraction": 0.0},
    3: {"lr": 1e-6, "min_lr": 0.0, "decay": "linear", "warmup_fraction": 0.0},
}
MAX_PRESET_WARMUP = 2000


@dataclass
class TrainConfig:
    manifest: str
    out: str
    model: str = "tiny"  # a name in bsm_model.model.CONFIGS
    round: int | None = None  # paper preset for the schedule below (None: the values given)
    init_from: str | None = None  # previous round's checkpoint (weights only)
    # schedule
    steps: int | None = None  # optimizer steps; default: one epoch of the training rows
    epochs: float | None = None
    lr: float = 2e-5
    min_lr: float = 1e-5
    decay: str = "cosine"  # cosine | linear | constant
    warmup_steps: int = 0
    # optimisation
    batch_size: int = 8  # rows per micro-batch per rank
    grad_accum: int = 1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # 0 disables
    # data
    seed: int = 0
    doc_mask: bool = True
    attn: str = "auto"  # auto | sdpa | mask | flex | varlen (see bsm_model.model)
    shuffle_window: int = 0  # shards shuffled together (0: all, a full permutation of (shard, row))
    val_fraction: float = 0.01  # held-out rows when the manifest lists no validation split
    val_max_rows: int = 512
    val_every: int = 0  # steps; 0: only at the end
    val_batch_size: int = 0  # 0: batch_size
    # runtime
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool = False
    deterministic: bool | None = None  # None: on for CPU, off for CUDA
    threads: int = 0  # torch CPU threads (0: torch's default)
    ckpt_every: int = 0  # steps; 0: only at the end
    keep_checkpoints: int = 2
    log_every: int = 10
    peak_flops: float | None = None  # for MFU where the device is not in the table
    extra: dict = field(default_factory=dict)

    def apply_round(self, explicit: set[str]) -> None:
        """Set the schedule from the round preset, except fields given explicitly."""
        if self.round is None:
            return
        if self.round not in ROUNDS:
            raise ValueError(f"round must be one of {sorted(ROUNDS)}")
        preset = ROUNDS[self.round]
        for key in ("lr", "min_lr", "decay"):
            if key not in explicit:
                setattr(self, key, preset[key])
        if "warmup_steps" not in explicit:
            self.extra["warmup_fraction"] = preset["warmup_fraction"]

    def resolve_warmup(self, total_steps: int) -> None:
        frac = self.extra.pop("warmup_fraction", None)
        if frac:
            self.warmup_steps = min(MAX_PRESET_WARMUP, max(1, round(frac * total_steps)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# Fields that must match to resume a run exactly (anything else may change, e.g. logging). The
# manifest is compared by content (its sha256), so a moved shard directory still resumes.
RESUME_KEYS = ("model", "seed", "doc_mask", "batch_size", "grad_accum", "shuffle_window",
               "val_fraction", "val_max_rows", "lr", "min_lr", "decay", "warmup_steps", "weight_decay", "beta1",
               "beta2", "eps", "grad_clip")


@dataclass(frozen=True)
class LRSchedule:
    """Linear warmup to ``lr``, then decay that reaches ``min_lr`` at ``total_steps`` (the step
    after the last, as in transformers' schedulers, so no step is spent at lr 0). A pure function
    of the step: its whole state is these fields (saved in the checkpoint)."""

    lr: float
    min_lr: float
    total_steps: int
    warmup_steps: int = 0
    decay: str = "cosine"

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        t = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.decay == "constant":
            return self.lr
        if self.decay == "linear":
            return self.lr + (self.min_lr - self.lr) * t
        if self.decay == "cosine":
            return self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        raise ValueError(f"unknown decay {self.decay!r}")

    def state_dict(self) -> dict:
        return asdict(self)
