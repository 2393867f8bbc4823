"""WSGI entry point: `flask --app app run`, `gunicorn app:app` (without --preload, so each
worker process imports it and runs its own embedded recovery loop)."""

from pie import create_app

app = create_app()
if app.config["PIE_EMBEDDED_WORKER"]:
    app.extensions["pie"].start_background()
