# syntax=docker/dockerfile:1
# facedit API image: FastAPI + the Celery client (tasks are enqueued by name), no torch.
# Also runs `facedit db upgrade` (the compose `migrate` service, the k8s migration Job).
#
#   docker build -f docker/api.Dockerfile -t facedit-api .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The API's own requirements, listed explicitly: the distribution's base dependencies
# without torch and the image-processing stack (torch, opencv, scipy, scikit-image, numba,
# dlib-bin and face_recognition_models live only in the worker image), plus the `service` extra. Keep in step with pyproject.toml.
RUN pip install \
        "numpy>=1.26" \
        "pillow>=10" \
        "sqlalchemy>=2.0" \
        "alembic>=1.13" \
        "boto3>=1.34" \
        "pydantic>=2.6" \
        "pydantic-settings>=2.2" \
        "typer>=0.12" \
        "rich>=13" \
        "fastapi>=0.110" \
        "uvicorn>=0.29" \
        "celery[redis]>=5.4" \
        "redis>=5" \
        "psycopg[binary]>=3.1" \
        "prometheus-client>=0.20" \
        "httpx>=0.27" \
        "limits>=5"

WORKDIR /opt/facedit
COPY pyproject.toml README.md ./
COPY facedit ./facedit
COPY api ./api
COPY workers ./workers
COPY shared ./shared
# --no-deps: the project itself only; its torch dependency is deliberately not installed.
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --user-group --home-dir /home/facedit --create-home facedit \
    && mkdir -p /data \
    && chown facedit:facedit /data

USER 10001:10001
ENV FACEDIT_DATA_DIR=/data
WORKDIR /home/facedit
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["facedit", "api", "--host", "0.0.0.0", "--port", "8000"]
