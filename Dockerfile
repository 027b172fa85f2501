# One image for the tracking server and the trainer, so both sides run the same pinned MLflow.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only the locked requirements, each checked against its hash: the same packages as the
# README's install and the tests. Nothing is installed when a container starts.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && useradd --create-home --uid 1000 learner

# Not root. The trainer runs as TRAINER_UID from .env (docker-compose.yml), 1000 by default.
USER 1000:1000
WORKDIR /work
EXPOSE 5000
