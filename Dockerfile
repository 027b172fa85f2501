# One image for the tracking server and the trainer, so both sides run the same pinned MLflow.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only the pinned requirements: nothing is installed when a container starts.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
    && useradd --create-home --uid 1000 learner

# Not root: uid 1000 also owns what the trainer writes into the mounted project folder.
USER 1000:1000
WORKDIR /work
EXPOSE 5000
