"""The HTTP service: an OpenAI-compatible API for retired models behind access control, access
applications, operator endpoints, Prometheus metrics. Spec: docs/design/access.md."""

from emeritus.gateway.admission import Admission, AdmissionSettings
from emeritus.gateway.app import create_app, new_admin_key
from emeritus.gateway.common import Gateway
from emeritus.gateway.lifecycle_headers import lifecycle_headers, model_entry
from emeritus.gateway.server import mock_opener, preserved_opener, running, serve

__all__ = [
    "Admission",
    "AdmissionSettings",
    "Gateway",
    "create_app",
    "lifecycle_headers",
    "mock_opener",
    "model_entry",
    "new_admin_key",
    "preserved_opener",
    "running",
    "serve",
]
