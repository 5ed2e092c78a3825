# classsync as a container image: gRPC on 0.0.0.0:50051, a non-root user, a gRPC health probe.
#
# Dependencies come from a wheelhouse built beside this file from requirements.lock
# (`make wheelhouse`, part of `make image`), so the build never needs the package index.
# BASE_IMAGE: any image with Python 3.11 and its venv module. Where no registry answers,
# tools/container/build-base.sh builds one from Debian packages (local/python:3.11).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
COPY requirements.lock /tmp/requirements.lock
COPY build/wheelhouse /tmp/wheelhouse
# The lock pins every dependency; only classsync's runtime dependencies are installed.
RUN python3 -m venv /opt/classsync \
 && /opt/classsync/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse \
      --disable-pip-version-check -c /tmp/requirements.lock classsync \
 && /opt/classsync/bin/pip uninstall -y pip

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/classsync classsync
COPY --from=build /opt/classsync /opt/classsync
# SHUTDOWN_GRACE_SECONDS: the drain after SIGTERM takes at most about this + 2 s, inside
# Docker's default 10 s stop timeout. Raise both together (docker run --stop-timeout,
# compose stop_grace_period). The default database is SQLite in the home directory.
ENV PATH=/opt/classsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRPC_ADDRESS=0.0.0.0:50051 \
    METRICS_ADDRESS=0.0.0.0:9464 \
    SHUTDOWN_GRACE_SECONDS=7 \
    LOG_FORMAT=json
USER classsync
WORKDIR /home/classsync
# 9464: /metrics, /healthz, /readyz (METRICS_ADDRESS; empty turns them off).
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["classsync", "health"]
STOPSIGNAL SIGTERM
# Exec form: classsync is PID 1 and receives SIGTERM itself (no shell in between).
CMD ["classsync", "serve"]
