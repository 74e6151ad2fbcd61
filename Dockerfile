# The hub as a container: `docker build -t hub .` then
#   docker run -p 8080:8080 -v hub-data:/data hub                 # embedded default: SQLite in the /data volume
#   docker run -e HUB_DATABASE__URL=postgresql://hub@db/hub hub   # or PostgreSQL; any HUB_<SECTION>__<KEY> works
#   docker exec <container> hub tokens create --role admin        # the token is the last line of output

# -- builder: a wheel of the hub, installed with its dependencies into a venv the runtime stage copies whole --------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv

# Dependencies first, from the lock alone (every package pinned with its hashes), so a change to the hub's code does
# not reinstall them. The lock also pins setuptools and wheel, which build the hub's wheel below.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY hub ./hub
RUN /opt/venv/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist . \
    && /opt/venv/bin/pip install --no-deps /dist/hub-*.whl

# -- runtime: the venv and nothing else from the build; no compiler, no pip cache, no sources ----------------------
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_SERVER__HOST=0.0.0.0 \
    HUB_SERVER__PORT=8080 \
    HUB_DATABASE__URL=sqlite:////data/hub.db

# A fixed uid/gid so a bind-mounted /data can be chowned to match from the host.
RUN groupadd --system --gid 10001 hub \
    && useradd --system --uid 10001 --gid hub --home-dir /data --no-create-home --shell /usr/sbin/nologin hub \
    && mkdir -p /data /etc/hub \
    && chown hub:hub /data

COPY --from=builder /opt/venv /opt/venv
# For reference (`--config /etc/hub/hub.toml` with a copy mounted there); the env vars above need no file.
COPY config/hub.example.toml /etc/hub/hub.example.toml

USER hub
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# slim has no curl; urlopen raises on a refused connection or a non-2xx answer, and `|| exit 1` keeps the exit
# code to the 0/1 Docker expects. The port follows HUB_SERVER__PORT if it is overridden.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HUB_SERVER__PORT', '8080'), timeout=4)" || exit 1

# hub serve drains in-flight requests on SIGTERM (what `docker stop` sends) and migrates the schema at start.
STOPSIGNAL SIGTERM
CMD ["hub", "serve"]
