# Stand-in for postgres:17.6-bookworm, for machines where no registry serves it. Built only by the
# tests (tests/docker_stack.py), never under that name.
#
# What differs from the real image:
# - Debian 13's PostgreSQL 17 package (17.12), on Debian 13, not the PostgreSQL project's 17.6 build
#   on Debian 12.
# - postgres-entrypoint.sh does the part of the real docker-entrypoint.sh that docker-compose.yml
#   uses: on an empty data folder, a cluster whose superuser is POSTGRES_USER with
#   POSTGRES_PASSWORD (scram-sha-256 over the network), and the database POSTGRES_DB. It does not
#   run /docker-entrypoint-initdb.d scripts, and it runs as user postgres from the start.
# - The PostgreSQL programs come first on PATH: Debian's wrappers for psql and pg_isready pick a
#   cluster (and port) of their own.
# ROOTFS: a Debian 13 root file system (mmdebstrap --variant=minbase) with postgresql-17,
# imported with `docker import`.
ARG ROOTFS
FROM ${ROOTFS}
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
RUN mkdir -p /var/lib/postgresql/data /run/postgresql \
    && chown postgres:postgres /var/lib/postgresql/data /run/postgresql \
    && chmod 700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/17/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
