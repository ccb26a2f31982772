"""The security suite (issue 14): each test reproduces an attack against the gateway, the
console or the event log and checks what stops it (docs/design/access.md, "Threat model").
Fixtures shared with the rest of the suite come from tests/conftest.py."""
