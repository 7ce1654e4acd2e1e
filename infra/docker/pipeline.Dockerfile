# Light image for pipeline steps that only talk to Vertex AI and Artifact Registry: model
# registration, schedules, template upload, and `assemblenet pipeline compile` in Cloud Build.
# Installs this project with the `pipeline` extra exactly as pinned (and hash-checked) in uv.lock.
# Build context: the repository root (see infra/cloudbuild.yaml and the root .dockerignore).
FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

FROM python:3.11.14-slim-bookworm AS build
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
RUN uv sync --frozen --no-install-project --no-editable --extra pipeline
COPY model/ model/
COPY components/ components/
COPY pipeline/ pipeline/
RUN uv sync --frozen --no-editable --extra pipeline

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="assemblenet-pipeline" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/app
# Batch steps started by Vertex AI: no long-running service to probe.
HEALTHCHECK NONE
ENTRYPOINT ["assemblenet"]
CMD ["--help"]
