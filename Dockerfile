# Offload's image: the worker, the API, the codec server and the CLI (`offload ...`).
# Small (slim base, no build tools in the final stage) and not root.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The project without tests, benchmarks or local state (see .dockerignore).
COPY . .
RUN python -m venv /opt/offload && /opt/offload/bin/pip install .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/offload/bin:$PATH PYTHONUNBUFFERED=1 OFFLOAD_DATA_DIR=/data
RUN useradd --system --uid 10001 --home-dir /data --create-home offload
COPY --from=build /opt/offload /opt/offload
USER offload
WORKDIR /data
EXPOSE 8000 8234 9464
CMD ["offload", "worker"]
