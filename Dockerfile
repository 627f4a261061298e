# seqfast: a Seq-compatible log server.
#
#   docker build -t seqfast .
#   docker run -d -p 5341:5341 -v seqfast-data:/data --name seqfast seqfast
#
# Settings come from SEQFAST_* environment variables (see the README's settings table) or flags
# after the image name, e.g. `docker run ... seqfast --require-api-key`.

# ---- build: compile the native core and make the wheel ---------------------------------------
FROM python:3.11-slim AS builder

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

# ---- run: the wheel and its dependencies, nothing else ---------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SEQFAST_DATA=/data \
    SEQFAST_LISTEN=0.0.0.0:5341

RUN groupadd --system --gid 10001 seqfast \
    && useradd --system --uid 10001 --gid seqfast --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin seqfast \
    && mkdir -p /data \
    && chown seqfast:seqfast /data

COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels

USER seqfast
WORKDIR /data
VOLUME /data
EXPOSE 5341

# 200 from /health: serving and free disk above the reserve (no curl in slim: Python's urllib).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('SEQFAST_LISTEN', '0.0.0.0:5341').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4)"]

# SIGTERM: stop accepting, finish in-flight commits, flush the head, exit 0 (up to ~30 s:
# give `docker stop` a longer timeout than its default 10 s, e.g. --time 60).
STOPSIGNAL SIGTERM
ENTRYPOINT ["seqfast", "serve"]
