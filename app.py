"""WSGI entry point: `flask --app app run`, `gunicorn app:app`."""

from pie import create_app

app = create_app()
