# Stand-in for python:3.11.14-slim-bookworm, the base of the project's Dockerfile, for machines
# where no registry serves it. Built only by the tests (tests/docker_stack.py), never under that name.
#
# What differs from the real image:
# - Debian 12's own Python, 3.11.2 (/usr/bin/python3.11), not python.org's 3.11.14 in /usr/local;
#   `python` is Debian's python-is-python3 link, and pip is Debian's (23.0.1).
# - Debian marks its Python EXTERNALLY-MANAGED, so that pip leaves it alone; the real image has no
#   such marker, and the Dockerfile pip-installs into the system Python. The marker is removed.
# - The machine's own CA bundle replaces Debian's, so that pip and apt reach the package
#   registries from a network that inspects TLS (the real image keeps Debian's).
# ROOTFS: a Debian root file system (mmdebstrap --variant=minbase) with python3.11,
# python3-pip, python-is-python3 and ca-certificates, imported with `docker import`.
ARG ROOTFS
FROM ${ROOTFS}
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
