# Beam preprocessing image, used twice:
#  * as the pipeline step that launches the Dataflow job (Vertex runs it with its own command), and
#  * as the Dataflow worker SDK container (`--sdk_container_image`): Dataflow starts the inherited
#    ENTRYPOINT /opt/apache/beam/boot, which runs the SDK harness with the system interpreter, so
#    the project goes into that interpreter rather than a virtual environment.
# Dependencies come from uv.lock with hashes: the `beam` extra, plus `pipeline` for kfp, which runs
# the launcher step as a KFP Python component. The base already carries Beam 2.77.
# Build context: the repository root (see infra/cloudbuild.yaml and the root .dockerignore).
FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

FROM apache/beam_python3.11_sdk:2.77.0 AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/local/bin/python3.11
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN mkdir -p /dist \
    && uv export --frozen --no-emit-project --extra beam --extra pipeline --format requirements-txt \
        --output-file /dist/requirements.txt
COPY model/ model/
COPY components/ components/
COPY pipeline/ pipeline/
RUN uv build --wheel --out-dir /dist

FROM apache/beam_python3.11_sdk:2.77.0
LABEL org.opencontainers.image.title="assemblenet-beam" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /dist /tmp/dist
# --require-hashes: every package must match the hash recorded in uv.lock.
RUN pip install --no-cache-dir --require-hashes --no-deps -r /tmp/dist/requirements.txt \
    && pip install --no-cache-dir --no-deps /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --create-home --shell /usr/sbin/nologin app
ENV PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/app
# Batch workers supervised by Dataflow: no long-running service to probe.
HEALTHCHECK NONE
