"""Opening a repository from what the user configured (URL, password source, backend options)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UsageError
from ..repository.backends import open_backend
from ..repository.repository import Repository
from .password import PasswordSource, get_password


@dataclass
class RepoSettings:
    url: str | None
    password: PasswordSource = field(default_factory=PasswordSource)
    backend_options: dict = field(default_factory=dict)

    def require_url(self) -> str:
        if not self.url:
            raise UsageError("no repository given: use --repo, CELLS_BACKUP_REPOSITORY or `repository` in the config")
        return self.url


def open_repository(settings: RepoSettings) -> Repository:
    backend = open_backend(settings.require_url(), **settings.backend_options)
    if not backend.exists_repository():
        # Checked before asking for a password: a typo in the URL should not look like a wrong password.
        return Repository.open(backend, b"")
    return Repository.open(backend, get_password(settings.password))
