# tusserver with the s3, redis and azure extras, as an unprivileged user (uid 10001); uploads and state in /data.
#   docker build -t tusserver . && docker run -p 8080:8080 -v tusdata:/data tusserver
# A bind mount must be writable by uid 10001 (`chown 10001 DIR` on the host); otherwise tusserver says so in one
# line and exits. examples/compose.yaml runs two instances behind nginx with Redis and an S3 server.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY tusserver ./tusserver
COPY storage_backends ./storage_backends
RUN pip install --no-cache-dir ".[s3,redis,azure]" \
    && useradd --system --uid 10001 --no-create-home tus \
    && mkdir /data && chown tus /data

USER 10001
ENV TUSSERVER_HOST=0.0.0.0 \
    TUSSERVER_PORT=8080 \
    TUSSERVER_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
# /readyz: the state store and the storage answer (503 with the reason otherwise).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TUSSERVER_PORT', '8080') + '/readyz', timeout=4)"]
CMD ["tusserver"]
