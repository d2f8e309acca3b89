# syntax=docker/dockerfile:1
# facedit GPU worker image: CUDA runtime, Python 3.11, torch pinned, the Celery worker.
#
#   docker build -f docker/worker.Dockerfile -t facedit-worker .
#   docker build -f docker/worker.Dockerfile --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 ...
#
# The torch wheels carry their own CUDA libraries; the base image gives the matching
# runtime and cuDNN for anything else, and needs a host driver recent enough for it.
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ghcr.io/astral-sh/uv:0.8.22 AS uv

FROM ${CUDA_IMAGE}

# Wheel index for the CUDA build of torch (the CPU build would run, but not on the GPU).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# Extras of the facedit distribution to install (face alignment, dlib-bin, is in the base).
ARG FACEDIT_EXTRAS=service

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

COPY --from=uv /uv /usr/local/bin/uv

# Python 3.11 (the distribution requires it; the Ubuntu base ships another) and torch,
# pinned, in a layer of their own so code changes do not re-download them.
RUN uv venv --python 3.11 /opt/venv \
    && uv pip install --index-url "${TORCH_INDEX_URL}" "torch==2.13.0"

WORKDIR /opt/facedit
COPY pyproject.toml README.md ./
COPY facedit ./facedit
COPY api ./api
COPY workers ./workers
COPY shared ./shared
# torch==2.13.* in the dependencies is already satisfied by the CUDA build above.
RUN uv pip install ".[${FACEDIT_EXTRAS}]" \
    && python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
    && python -c "from shared.blend import precompile_poisson; assert precompile_poisson()" \
    && useradd --system --uid 10001 --user-group --home-dir /home/facedit --create-home facedit \
    && mkdir -p /data /weights \
    && chown facedit:facedit /data

USER 10001:10001
ENV FACEDIT_DATA_DIR=/data \
    FACEDIT_WEIGHTS_DIR=/weights \
    FACEDIT_DEVICE=cuda
WORKDIR /home/facedit

# SIGTERM (docker stop, Kubernetes pod termination) is Celery's warm shutdown: it stops
# taking jobs and finishes the running ones; give it longer than the job time limit.
STOPSIGNAL SIGTERM
CMD ["facedit", "worker"]
