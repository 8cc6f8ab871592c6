# syntax=docker/dockerfile:1
#
# ocrserve images, one Dockerfile, three targets (see README, "On-prem with docker compose"):
#
#   docker build --target api    -t ocrserve:api    .   # HTTP API, CPU torch (Celery mode: never loads the weights)
#   docker build --target worker -t ocrserve:worker .   # `ocrserve worker` on an NVIDIA GPU (CUDA torch)
#   docker build --target cpu    -t ocrserve:cpu    .   # worker, or all-in-one `serve`, on CPU only
#
# All three start from python:3.11-slim-bookworm. The GPU image needs no CUDA base image: torch's Linux wheels
# from PyPI bundle the CUDA runtime (nvidia-* wheels), and the host only needs the NVIDIA driver and the
# NVIDIA Container Toolkit. TORCH_INDEX_URL picks another wheel build (e.g. https://download.pytorch.org/whl/cu126
# for an older driver). Layers go from least to most often changed: torch, the project's dependencies (read from
# pyproject.toml, at the versions pinned in constraints.txt, as ./dev installs them), then the project's own
# wheel, so a source change rebuilds only the last, small layer.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TORCH_VERSION=2.13.0

# ---- build: a wheel of the project, and its dependency list --------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /requirements.txt \
    && cp constraints.txt /constraints.txt
COPY app ./app
COPY workers ./workers
COPY ocr_engine ./ocr_engine
COPY ocrserve ./ocrserve
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- base: the runtime user and cache directory, shared by every target --------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface
# The cache directory exists and belongs to the user, so a named volume mounted there starts out writable.
RUN groupadd --system --gid 10001 ocrserve \
    && useradd --system --uid 10001 --gid ocrserve --create-home --home-dir /home/ocrserve ocrserve \
    && mkdir -p /cache/huggingface /models \
    && chown -R ocrserve:ocrserve /cache
WORKDIR /home/ocrserve

# ---- deps-cpu / deps-cuda: torch first and pinned, then the project's dependencies ---------------------------
FROM base AS deps-cpu
ARG TORCH_VERSION
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
COPY --from=build /requirements.txt /constraints.txt /tmp/
RUN pip install -r /tmp/requirements.txt -c /tmp/constraints.txt

FROM base AS deps-cuda
ARG TORCH_VERSION
ARG TORCH_INDEX_URL=
RUN pip install "torch==${TORCH_VERSION}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
COPY --from=build /requirements.txt /constraints.txt /tmp/
RUN pip install -r /tmp/requirements.txt -c /tmp/constraints.txt

# ---- api: the HTTP API -----------------------------------------------------------------------------------------
FROM deps-cpu AS api
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
USER ocrserve
EXPOSE 8000
# /health: 200 once ready (Celery mode: Redis reachable; embedded mode: weights loaded). No curl in slim images.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
ENTRYPOINT ["ocrserve"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

# ---- worker: `ocrserve worker` on an NVIDIA GPU ---------------------------------------------------------------
FROM deps-cuda AS worker
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
USER ocrserve
ENTRYPOINT ["ocrserve"]
CMD ["worker"]

# ---- cpu: a worker on CPU (or all-in-one: `docker run -p 8000:8000 ocrserve:cpu serve --host 0.0.0.0`) --------
FROM deps-cpu AS cpu
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
ENV OCRSERVE_DEVICE=cpu
USER ocrserve
ENTRYPOINT ["ocrserve"]
CMD ["worker"]
