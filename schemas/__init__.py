"""marshmallow schemas, one module per resource, mirroring the API contract."""
