import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mariadb():
    """One private MariaDB server for the whole test session (see dbserver.py)."""
    from dbserver import start_mariadb

    try:
        server = start_mariadb()
    except RuntimeError as e:
        pytest.fail(str(e))
    yield server
    server.stop()


from s3server import s3_prefix, s3_server, s3_server_running  # noqa: E402,F401  (session-wide fixtures)
