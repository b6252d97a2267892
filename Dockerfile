# klikit-admin: gunicorn serving the operator console and the gateway endpoints.
# Configure at run time with the variables in the README (DATABASE_URL, SECRET_KEY, ...).
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
RUN pip install . \
    && DEBUG=1 python manage.py collectstatic --no-input -v 0 \
    && useradd --system --uid 10001 --home-dir /app klikit \
    && mkdir -p /app/var && chown klikit /app/var

USER klikit
EXPOSE 8000
# Two sync workers per two cores: measured faster than more workers on this workload.
# gunicorn also reads ./gunicorn.conf.py (no access line for gateway requests: they log their own).
CMD ["sh", "-c", "DB_STATEMENT_TIMEOUT_MS=0 python manage.py migrate --no-input && exec gunicorn klikit_admin.wsgi --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-2} --access-logfile - --error-logfile -"]
