import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


import pytest  # noqa: E402

from leftovers import find_leftovers, kill_all, mark_session  # noqa: E402

SESSION_MARKER = mark_session()  # before any fixture or test starts a process


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


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if a process it started is still alive (after every fixture was torn down)."""
    leftovers = find_leftovers(SESSION_MARKER)
    if not leftovers:
        return
    lines = [f"{len(leftovers)} process(es) left behind by the tests, killed now:"]
    lines += [f"  pid {left.pid}: {left.cmdline}" for left in leftovers]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write("\n")
    for line in lines:
        if reporter:
            reporter.write_line(line, red=True)
        else:
            print(line, file=sys.stderr)
    kill_all(leftovers)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


from s3server import s3_prefix, s3_server, s3_server_running  # noqa: E402,F401  (session-wide fixtures)
