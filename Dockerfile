# firegrid: the ingest service and its CLI (simulator, dashboards), installed the way
# `make setup` installs it: `pip install .` of this pyproject (without the dev extra).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# openssl: the compose service `tls` makes the broker's private CA and certificate with it
# (named here rather than relied on as a dependency of the base image's ca-certificates).
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The whole build context (.dockerignore keeps out the venv, tests, caches, data).
COPY . /src
RUN pip install --upgrade pip && pip install . && rm -rf /src/build

RUN useradd --system --uid 10001 --home-dir /data firegrid \
    && mkdir -p /data /registry \
    && chown firegrid:firegrid /data /registry
USER firegrid
WORKDIR /data

ENV FIREGRID_REGISTRY=/registry \
    FIREGRID_DATA_DIR=/data \
    FIREGRID_HTTP=0.0.0.0:8080
VOLUME ["/data", "/registry"]
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["firegrid", "ingest"]
