# Trainer image for `bsm train` / `bsm export` on NVIDIA GPUs.
#
# CUDA: torch 2.13.0's Linux wheels on PyPI are built against CUDA 13.0 (they require
# cuda-toolkit==13.0.3 and nvidia-cudnn-cu13), so the base is a CUDA 13.0 *devel* image: flash-attn
# is compiled here with its nvcc, which must have the same major version as torch.version.cuda.
# Ubuntu 24.04's Python 3.12 is inside the project's supported range (>=3.11,<3.13).
#
# Build from the repository root (flash-attn compiles for 20-60 min; each compile job needs about
# 4 GB of RAM, so lower MAX_JOBS on small builders; CUDA_ARCHS 80;90 = A100, H100/H200):
#   docker build -f docker/trainer.Dockerfile -t bsm-trainer:0.1.0 --build-arg MAX_JOBS=8 .
# One GPU:
#   docker run --gpus all --ipc=host -v /data:/data bsm-trainer:0.1.0 \
#       train --manifest /data/round-1 --config bsm-110m --round 1 --out /data/runs/r1
# One node, 8 GPUs (DDP; RUN_DIR on a filesystem every rank sees):
#   docker run --gpus all --ipc=host -v /data:/data --entrypoint torchrun bsm-trainer:0.1.0 \
#       --nproc_per_node 8 -m bsm_model.cli train --manifest /data/round-1 --out /data/runs/r1
# Throughput check against transformers' Llama:
#   docker run --gpus all --ipc=host --entrypoint python bsm-trainer:0.1.0 \
#       benchmarks/bench_train.py --device cuda --config bsm-110m --batch-size 32 --compile
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-devel-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG FLASH_ATTN_VERSION=2.8.3.post2
ARG TRANSFORMERS_VERSION=5.23.0
ARG MAX_JOBS=8
ARG CUDA_ARCHS="80;90"

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && pip install --upgrade pip setuptools wheel

# torch first, from PyPI (the default Linux wheel is the CUDA build); fail early on a CPU build.
RUN pip install "torch==${TORCH_VERSION}" \
    && python -c "import torch; v = torch.version.cuda; assert v and v.startswith('13.'), v; print('torch', torch.__version__, 'cuda', v)"

# flash-attn compiled against that torch (its varlen kernel serves per-document attention).
# --no-build-isolation: the build must see the installed torch; FORCE_BUILD skips the attempt to
# download a prebuilt wheel from GitHub, which may not match this torch/CUDA pair.
RUN pip install ninja packaging psutil einops \
    && MAX_JOBS=${MAX_JOBS} FLASH_ATTN_CUDA_ARCHS="${CUDA_ARCHS}" FLASH_ATTENTION_FORCE_BUILD=TRUE \
       pip install --no-build-isolation "flash-attn==${FLASH_ATTN_VERSION}" \
    && python -c "from flash_attn import flash_attn_varlen_func; import flash_attn; print('flash-attn', flash_attn.__version__)"

WORKDIR /opt/bsm
COPY pyproject.toml setup.py README.md NOTICE ./
COPY bsm_data ./bsm_data
COPY bsm_model ./bsm_model
COPY pipelines ./pipelines
COPY schemas ./schemas
COPY benchmarks ./benchmarks
COPY data ./data
# The project with its train extra; torch is already the pinned version, so pip keeps the CUDA build.
RUN pip install ".[train]" "transformers==${TRANSFORMERS_VERSION}" \
    && python -c "import torch, bsm_model.train, bsm_model.export; assert torch.version.cuda, 'CPU torch got installed'; print('ok')"

ENTRYPOINT ["bsm"]
CMD ["train", "--help"]
