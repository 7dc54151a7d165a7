# tusserver on the embedded defaults: uploads and state in the /data volume.
#   docker build -t tusserver . && docker run -p 8080:8080 -v tusdata:/data tusserver
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tusserver ./tusserver
COPY storage_backends ./storage_backends
RUN pip install --no-cache-dir . && useradd --system --uid 10001 tus && mkdir /data && chown tus /data

USER tus
ENV TUSSERVER_HOST=0.0.0.0 \
    TUSSERVER_PORT=8080 \
    TUSSERVER_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
CMD ["tusserver"]
