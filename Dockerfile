# syntax=docker/dockerfile:1
# loyalty-gateway: a slim, non-root image. Build: docker build -t loyalty-gateway .
# Stage 1 builds the wheel and a virtualenv with its dependencies; stage 2 copies only the
# virtualenv onto a fresh slim Python, so no compiler, pip cache or source tree ships.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY resolvers ./resolvers
COPY dataloaders ./dataloaders
# The observability extra brings structured-log and tracing support; the wheel is built once
# and installed into /opt/venv, which is all the runtime stage takes.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade "pip>=24" \
 && /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-cache-dir "$(ls /wheels/*.whl)[tracing]" \
 && /opt/venv/bin/loyalty-gateway --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="loyalty-gateway" \
      org.opencontainers.image.description="GraphQL loyalty gateway over MongoDB"
RUN groupadd --system --gid 10001 loyalty \
 && useradd --system --uid 10001 --gid loyalty --home-dir /app --no-create-home --shell /usr/sbin/nologin loyalty \
 && mkdir -p /app/data \
 && chown -R loyalty:loyalty /app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOYALTY_ENVIRONMENT=production \
    LOYALTY_HOST=0.0.0.0 \
    LOYALTY_PORT=8000 \
    LOYALTY_DATA_DIR=/app/data
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Ready means: the lifespan finished (indexes, program, workers) and MongoDB answers a ping.
HEALTHCHECK --interval=10s --timeout=3s --start-period=40s --retries=3 \
    CMD ["loyalty-gateway", "probe", "--path", "/readyz"]
ENTRYPOINT ["loyalty-gateway"]
CMD ["serve"]
