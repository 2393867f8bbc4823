"""`Client`: the transport plus one attribute per resource."""

from __future__ import annotations

from pie_client.config import resolve
from pie_client.resources.assignments import Assignments
from pie_client.resources.features import Features
from pie_client.resources.jobs import Jobs
from pie_client.resources.models import Models
from pie_client.resources.services import Services
from pie_client.resources.subscriptions import Subscriptions
from pie_client.resources.tenants import Clients, Domains
from pie_client.resources.versions import Versions
from pie_client.resources.webhooks import Webhooks
from pie_client.transport import Transport
from pie_client.types import Health


class Client:
    """PIE's API, grouped by resource: `client.models.list()`, `client.jobs.run(...)`.

    `url` and `token` default to PIE_URL and PIE_TOKEN, then to the profile `pie login`
    stored (`profile`, else PIE_PROFILE, else the current one)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        profile: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
    ) -> None:
        settings = resolve(url, token, profile)
        self.transport = Transport(
            settings.url, settings.token, timeout=timeout, retries=retries, backoff=backoff
        )
        self.models = Models(self.transport)
        self.versions = Versions(self.transport)
        self.jobs = Jobs(self.transport)
        self.subscriptions = Subscriptions(self.transport)
        self.webhooks = Webhooks(self.transport)
        self.clients = Clients(self.transport)
        self.domains = Domains(self.transport)
        self.features = Features(self.transport)
        self.services = Services(self.transport)
        self.assignments = Assignments(self.transport)

    @property
    def url(self) -> str:
        return self.transport.url

    def health(self) -> Health:
        return Health.from_dict(self.transport.request("GET", "/v2/health").data)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
