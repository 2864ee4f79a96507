# syntax=docker/dockerfile:1
# The loyalty API: `docker build -t loyalty .` then see compose.yaml for PostgreSQL.

# Build the project's wheel and every dependency's, so the runtime stage installs offline.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY loyalty ./loyalty
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOYALTY_DATABASE_URL=sqlite+aiosqlite:////data/loyalty.db
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels loyalty \
    && useradd --system --uid 10001 --create-home loyalty \
    && mkdir /data && chown loyalty /data
USER loyalty
WORKDIR /home/loyalty
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["loyalty", "serve", "--host", "0.0.0.0", "--port", "8000"]
