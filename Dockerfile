# One image for the tracking server and the trainer, so both sides run the same pinned MLflow.
# PYTHON_IMAGE is the base. The tests build this file on a stand-in base where no registry
# serves python images (tests/standins/); you never need to set it.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# git, so that MLflow records which commit of your code a run ran (the run's tag
# mlflow.source.git.commit); without git, GitPython prints about 30 lines of warnings at every
# run. /work is your project folder, mounted from your machine: git refuses a repository that
# another user owns ("dubious ownership") unless it is marked safe. The Debian release comes
# with the base image, so the package version is not pinned here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory /work

# Only the locked requirements, each checked against its hash: the same packages as the
# README's install and the tests. Nothing is installed when a container starts.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && useradd --create-home --uid 1000 learner

# Not root. The trainer runs as TRAINER_UID from .env (docker-compose.yml), 1000 by default.
USER 1000:1000
WORKDIR /work
EXPOSE 5000
