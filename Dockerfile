# syntax=docker/dockerfile:1
# Two images from one file (no Docker engine runs on the development machines: every command
# below is also run outside Docker; see docs/serving.md, "Container"):
#
#   docker build --target train -t gen-keras:train .
#   docker run --rm -v "$PWD/outputs:/work/outputs" gen-keras:train \
#       train --config pipelines/configs/vae_mnist10k.yaml
#
#   docker build --target serve -t gen-keras:serve .
#   docker run --rm -p 8000:8000 -v "$PWD/outputs/exports:/models:ro" gen-keras:serve
#
# Inside the container the server binds 0.0.0.0 (loopback would be unreachable through -p);
# outside it `gen-keras serve` binds 127.0.0.1 unless told otherwise.
ARG PYTHON_IMAGE=python:3.11-slim

# -- train: the whole package with TensorFlow (the CPU wheel) ---------------------------------------
FROM ${PYTHON_IMAGE} AS train
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gen_keras ./gen_keras
COPY serving ./serving
RUN pip install ".[cpu]" && rm -rf /src/build
RUN useradd --create-home --uid 10001 genkeras && mkdir /work && chown genkeras /work
COPY --chown=genkeras pipelines /work/pipelines
USER genkeras
WORKDIR /work
ENTRYPOINT ["gen-keras"]
CMD ["--help"]

# -- serve: onnxruntime + FastAPI, no TensorFlow (pass --backend tf only in the train image) -------
FROM ${PYTHON_IMAGE} AS serve
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY serving/requirements.txt /tmp/serving-requirements.txt
RUN pip install -r /tmp/serving-requirements.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gen_keras ./gen_keras
COPY serving ./serving
RUN pip install --no-deps . && cd / && rm -rf /src
RUN useradd --create-home --uid 10001 serve
USER serve
WORKDIR /home/serve
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["gen-keras", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--models", "/models"]
