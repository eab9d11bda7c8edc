# eCommerce event producer. Build: docker build -t ecommerce-producer .
# Run:   docker run --rm -e KAFKA_BOOTSTRAP_SERVERS=broker:9092 ecommerce-producer --rate 10
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # pip runs as root at build time on purpose (the app then runs as a non-root user): no warning.
    PIP_ROOT_USER_ACTION=ignore \
    # Containers log to stdout; no log file inside the image.
    LOG_FILE="" \
    # Metrics and /healthz for the HEALTHCHECK below and for Kubernetes probes.
    METRICS_PORT=9100

WORKDIR /app

# Dependency layer first: rebuilt only when the requirements change. The image takes every extra (the second
# client, the schema formats, the compression codecs): a deployment sets its settings without a `make run`.
COPY requirements*.txt ./
RUN pip install --no-cache-dir -r requirements.txt -r requirements-formats.txt -r requirements-codecs.txt

COPY producer.py producer_config.env ./
COPY shopsim/ ./shopsim/
COPY schemas/ ./schemas/

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin producer
USER 10001

EXPOSE 9100

HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('METRICS_PORT', '9100'), timeout=2)"]

# Exec form: python is PID 1 and receives SIGTERM itself, so `docker stop` flushes in-flight events.
ENTRYPOINT ["python", "producer.py"]
