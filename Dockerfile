# The mt5-strategy image: mt5-gate is the ENTRYPOINT and holds the strategy runner (CMD)
# until the MT5 gateway answers, then execs it. Replace CMD with your runner.
#
# Online:   docker build -t mt5-strategy .
# Offline:  scripts/build_image.sh (wheels are downloaded on the host into wheels/,
#           then installed here with --no-index; see shared/CONTAINERS.md)
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY entrypoint/ entrypoint/
COPY wheels/ /wheels/
# With a prebuilt mt5_gate wheel in wheels/ nothing is fetched from an index;
# without one, pip builds this checkout and fetches its dependencies.
RUN python3 -m venv /opt/venv \
 && if ls /wheels/mt5_gate-*.whl >/dev/null 2>&1; then \
      /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels 'mt5-gate[rpyc]'; \
    else \
      /opt/venv/bin/pip install --no-cache-dir '/src[rpyc]'; \
    fi \
 && /opt/venv/bin/pip uninstall --yes pip setuptools >/dev/null 2>&1 || true

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="mt5-strategy" \
      org.opencontainers.image.description="Strategy runner gated on the MT5 ZeroMQ gateway by mt5-gate"
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATE_LOG_FORMAT=json
# A numeric non-root user: no passwd entry needed, and Kubernetes can verify runAsNonRoot.
USER 10001:10001
# The start period covers the gate's 10-minute wait (GATE_TIMEOUT=600) plus start-up:
# failures during a gateway outage do not count against the container.
HEALTHCHECK --interval=10s --timeout=5s --start-period=660s --retries=3 \
    CMD ["mt5-gate", "health"]
ENTRYPOINT ["mt5-gate", "wait", "--"]
CMD ["python", "-m", "entrypoint.sim.demo_runner"]
