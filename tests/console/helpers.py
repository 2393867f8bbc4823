"""A console session in the Flask test client: sign in with a token, read pages, post forms
with the page's CSRF token."""

from __future__ import annotations

import re
from typing import Any

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Console:
    def __init__(self, flask_client: Any) -> None:
        self.raw = flask_client
        self.csrf: str | None = None

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.raw.get(path, **kwargs)
        found = CSRF.search(response.get_data(as_text=True))
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, csrf: bool = True) -> Any:
        form = dict(data or {})
        if csrf:
            if self.csrf is None:
                self.get("/ui/sign-in")
            form.setdefault("csrf_token", self.csrf)
        return self.raw.post(path, data=form)

    def sign_in(self, token: str, **extra: Any) -> Any:
        self.get("/ui/sign-in")
        response = self.post("/ui/sign-in", {"token": token, **extra})
        self.get("/ui/models")  # the CSRF token is new after signing in
        return response

    def text(self, path: str, status: int = 200) -> str:
        response = self.get(path)
        assert response.status_code == status, (path, response.status_code)
        return response.get_data(as_text=True)


def signed_in(app: Any, token: str) -> Console:
    console = Console(app.test_client())
    response = console.sign_in(token)
    assert response.status_code == 303, response.get_data(as_text=True)
    return console
