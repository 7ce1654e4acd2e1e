# Training / evaluation image for Vertex AI custom jobs on Cloud TPU VMs.
# PyPI publishes tensorflow-tpu only up to 2.20.0 (the CPU build the rest of the project uses is
# 2.21), so this image installs the `tpu` extra: tensorflow-tpu 2.20.0 plus the libtpu release it
# is built against. Both are pinned in pyproject.toml and uv.lock; the versions below are checked
# against the lock by tests/infra and again at build time by the RUN step that imports them.
# The `pipeline` extra adds kfp: the pipeline's evaluation step runs here as a KFP Python
# component (`python3 -m kfp.dsl.executor_main`, no run-time pip install).
# Build context: the repository root (see infra/cloudbuild.yaml and the root .dockerignore).
ARG TENSORFLOW_TPU_VERSION=2.20.0
ARG LIBTPU_VERSION=0.0.14

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

FROM python:3.11.14-slim-bookworm AS build
ARG TENSORFLOW_TPU_VERSION
ARG LIBTPU_VERSION
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Third-party dependencies first, in their own layer, so code changes rebuild only the last step.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project --no-editable --extra tpu --extra pipeline
COPY model/ model/
COPY components/ components/
COPY pipeline/ pipeline/
# Then fail the build if the lock ever drifts from the TensorFlow/libtpu pair this image promises.
RUN uv sync --frozen --no-editable --extra tpu --extra pipeline \
    && /opt/venv/bin/python -c "import importlib.metadata as m, sys; \
got = (m.version('tensorflow-tpu'), m.version('libtpu')); \
want = ('${TENSORFLOW_TPU_VERSION}', '${LIBTPU_VERSION}'); \
sys.exit(0 if got == want else f'tensorflow-tpu/libtpu {got} != {want}')"

FROM python:3.11.14-slim-bookworm
ARG TENSORFLOW_TPU_VERSION
ARG LIBTPU_VERSION
LABEL org.opencontainers.image.title="assemblenet-trainer" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.assemblenet.tensorflow-tpu="${TENSORFLOW_TPU_VERSION}" \
      org.assemblenet.libtpu="${LIBTPU_VERSION}"
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KERAS_BACKEND=tensorflow \
    TF_CPP_MIN_LOG_LEVEL=1
USER 10001:10001
WORKDIR /home/app
# Batch training job: no long-running service to probe.
HEALTHCHECK NONE
ENTRYPOINT ["assemblenet"]
CMD ["train", "--help"]
