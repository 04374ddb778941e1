# The dashboard as a deployment runs it: `docker build -t archs-lab . && docker run --init -p 8501:8501 -v lab:/data archs-lab`
#
# Built and run here by `make image-test` (podman, on a Debian base made with debootstrap, pip offline from a
# local wheelhouse; see deploy/image-test.sh): healthy, a run trained from the Train page, kept on the volume
# across a restart, the server not root. tests/test_serve.py also runs the command of the CMD line below, with
# its flags, and checks the health endpoint the HEALTHCHECK uses.
#
# CPU torch by default (pip takes torch 2.13.0 from PyTorch's CPU index, and the matching torchvision). For
# NVIDIA GPUs (host with the NVIDIA Container Toolkit, `docker run --gpus all ...`):
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t archs-lab:cuda .
# or a CUDA base image that has Python 3.11:  --build-arg BASE=<image>
# Offline, or from a wheelhouse (a folder in the build context, e.g. made by
# `pip wheel -r requirements.txt -w artifacts/image/wheelhouse`):
#   docker build --build-arg WHEELS=artifacts/image/wheelhouse --build-arg OFFLINE=1 -t archs-lab .
# BASE is any image with Python 3.11 and its venv module (python3 -m venv): Debian 12's python3 + python3-venv
# will do, which is what `make image-test` imports from debootstrap.
ARG BASE=python:3.11-slim

# ---------------------------------------------------------------------------- the virtualenv, built apart
# Its wheels and pip's work stay in this stage; the image gets only /opt/venv. (torchvision is imported through
# archs/_compat.py, which fits a CUDA build of it to a CPU torch: not here, before archs is there.)
FROM ${BASE} AS venv
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG WITH_RAY=0
# A folder of the build context that pip looks in first (--find-links). deploy/wheels holds only a README.
ARG WHEELS=deploy/wheels
# 1: install from WHEELS only, no package index at all.
ARG OFFLINE=0
COPY requirements.txt requirements-ray.txt /tmp/req/
COPY ${WHEELS} /tmp/wheels/
RUN set -e; \
    if [ "${OFFLINE}" = 1 ]; then index="--no-index"; else index="--extra-index-url ${TORCH_INDEX}"; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check --find-links /tmp/wheels \
        $index -r /tmp/req/requirements.txt; \
    if [ "${WITH_RAY}" = 1 ]; then \
      /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check --find-links /tmp/wheels \
        $index -r /tmp/req/requirements-ray.txt; \
    fi; \
    /opt/venv/bin/python -c "import torch, streamlit; print('torch', torch.__version__)"

# ---------------------------------------------------------------------------- the image
FROM ${BASE}
COPY --from=venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv

# The server runs as an unprivileged user that owns the /data volume (runs and data sets) and its own home
# (~/.cache/archs), and nothing else: the code in /app is root's, read-only to it. A host folder bind-mounted
# on /data must be writable by uid 10001.
RUN groupadd --gid 10001 archs \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/archs --shell /usr/sbin/nologin archs \
 && mkdir -p /data/runs /data/datasets \
 && chown -R 10001:10001 /data

WORKDIR /app
COPY archs ./archs
COPY pages ./pages
COPY ui ./ui
COPY .streamlit/config.toml ./.streamlit/config.toml
COPY dashboard.py ./

# Runs and data sets live on a volume, so they survive a new container. ARCHS_EXECUTOR=ray with
# ARCHS_RAY_ADDRESS (and WITH_RAY=1 at build time) sends runs to a Ray cluster instead.
ENV ARCHS_RUNS_DIR=/data/runs ARCHS_DATA_DIR=/data/datasets ARCHS_EXECUTOR=local PYTHONUNBUFFERED=1 \
    HOME=/home/archs
VOLUME /data
USER 10001:10001
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"
CMD ["python", "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.showErrorDetails", "none", "--server.address", "0.0.0.0", "--server.port", "8501"]
