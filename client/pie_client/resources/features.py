"""`client.features`: a domain's feature contract."""

from __future__ import annotations

import builtins
from typing import Any

from pie_client.resources.base import Resource, path
from pie_client.types import JSON, FeatureDefinition, FeaturesReport


def feature_list(data: Any) -> list[FeatureDefinition]:
    return [FeatureDefinition.from_dict(item) for item in data]


class Features(Resource):
    def list(self, client_id: str, domain_id: str) -> list[FeatureDefinition]:
        url = path("clients", client_id, "domains", domain_id, "features")
        return self._call("GET", url, feature_list)

    def replace(
        self, client_id: str, domain_id: str, features: builtins.list[JSON]
    ) -> FeaturesReport:
        """Replace the list; the report names the services that need re-initialising."""
        url = path("clients", client_id, "domains", domain_id, "features")
        return self._call("PUT", url, FeaturesReport.from_dict, {"features": features})
