FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Production: DEBUG off, and no SECRET_KEY in the image; the container must be given one.
ENV DEBUG=false
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# Static files are collected at build time, with a throwaway key that exists for this step only
# (a RUN's variables are not kept in the image).
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

RUN useradd --create-home --uid 10001 crm && mkdir -p /app/var && chown -R crm /app/var
USER crm
EXPOSE 8000
CMD ["gunicorn", "retention_crm.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--preload", "--access-logfile", "-"]
