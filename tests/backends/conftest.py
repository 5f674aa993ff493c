"""The backend tests use the session-wide SeaweedFS fixtures from tests/conftest.py."""
