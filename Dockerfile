# The image behind web, worker and beat in docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=worker.settings \
    DJANGO_STATIC_ROOT=/app/staticfiles

WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY akeru ./akeru
COPY worker ./worker
RUN pip install '.[server]' \
 && DJANGO_DEBUG=1 DJANGO_STATIC_ROOT=/app/staticfiles python manage.py collectstatic --noinput

RUN useradd --system --uid 10001 --home-dir /app akeru
USER akeru

EXPOSE 8000
CMD ["gunicorn", "-c", "python:worker.gunicorn_conf", "worker.wsgi:application", "--bind", "0.0.0.0:8000"]
