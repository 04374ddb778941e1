# The dashboard as a deployment runs it: `docker build -t archs-lab . && docker run --init -p 8501:8501 -v lab:/data archs-lab`
#
# Untested here: this machine has no Docker engine and cannot pull base images. tests/test_serve.py runs the
# command of the CMD line below, with its flags, and checks the health endpoint the HEALTHCHECK uses.
#
# CPU torch by default (pip takes torch 2.13.0 from PyTorch's CPU index, and the matching torchvision). For
# NVIDIA GPUs (host with the NVIDIA Container Toolkit, `docker run --gpus all ...`):
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t archs-lab:cuda .
# or a CUDA base image that has Python 3.11:  --build-arg BASE=<image>
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG WITH_RAY=0

WORKDIR /app
COPY requirements.txt requirements-ray.txt ./
RUN python -m pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" -r requirements.txt \
 && if [ "${WITH_RAY}" = 1 ]; then python -m pip install --no-cache-dir -r requirements-ray.txt; fi
COPY archs ./archs
COPY pages ./pages
COPY ui ./ui
COPY .streamlit/config.toml ./.streamlit/config.toml
COPY dashboard.py ./

# Runs and data sets live on a volume, so they survive a new container. ARCHS_EXECUTOR=ray with
# ARCHS_RAY_ADDRESS (and WITH_RAY=1 at build time) sends runs to a Ray cluster instead.
ENV ARCHS_RUNS_DIR=/data/runs ARCHS_DATA_DIR=/data/datasets ARCHS_EXECUTOR=local PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"
CMD ["python", "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--server.address", "0.0.0.0", "--server.port", "8501"]
