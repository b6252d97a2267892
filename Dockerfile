# klikit-admin: gunicorn serving the operator console and the gateway endpoints.
# Configure at run time with the variables in the README; docs/operations.md has the production
# environment, the upgrade procedure and what to watch.
#
#   docker build -t klikit-admin .
#   docker run --env-file prod.env klikit-admin migrate     # explicit, never done by serve
#   docker run --env-file prod.env -p 8000:8000 klikit-admin  # serve (the default)
#   docker run --env-file prod.env -it klikit-admin manage createsuperuser
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md manage.py gunicorn.conf.py ./
COPY klikit_admin ./klikit_admin
COPY credentials ./credentials
COPY templates ./templates
COPY bin/docker-entrypoint bin/healthcheck ./bin/
# Static files are collected now, into the image (var/static), not when a container starts.
RUN pip install . \
    && DEBUG=1 python manage.py collectstatic --no-input -v 0 \
    && useradd --system --uid 10001 --home-dir /app klikit \
    && chown klikit /app/var

USER klikit
EXPOSE 8000
# Two sync workers per two cores: measured faster than more workers, and than gthread workers
# even behind nginx auth_request with an upstream keepalive pool (docs/performance.md).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 CMD ["python", "bin/healthcheck"]
ENTRYPOINT ["bin/docker-entrypoint"]
CMD ["serve"]
