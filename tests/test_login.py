"""Log in for real: ``st.login`` against an OpenID Connect provider that the test starts (oidc-provider-mock:
discovery, tokens and a login form), the dashboard served as a deployment runs it, two users in two browsers.

Each user logs in through the provider's form and owns the runs they start (the Runs page says "you", the
run store records ``user:<email>`` where the provider says the email is verified, else
``user:<issuer>#<sub>``); neither can stop or delete the other's; the same user in a third browser owns the
same runs and can stop them; Log out leaves an anonymous visitor who, on this server (``ARCHS_AUTH=required``),
owns nothing and can start nothing. A user whose token claims Alice's address unverified is not Alice.

The server reads a secrets file of the test's own (``--secrets.files``), never the repository's
``.streamlit/secrets.toml``. Needs the system Chromium; skipped, saying so, without it. The provider and
Authlib are pinned in requirements-test.txt: without them the test fails rather than skips.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ui.identity import user_identity

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ACTIVE = ("queued", "running")

ALICE = {"sub": "alice@example.org", "email": "Alice@Example.org", "email_verified": True, "name": "Alice Liddell"}
BOB = {"sub": "bob@example.org", "email": "bob@example.org", "name": "Bob Builder"}  # no email_verified claim
# an address the provider did not check, and it is Alice's (the provider's form lets anyone be any subject)
CAROL = {"sub": "carol-7f3a", "email": "alice@example.org", "email_verified": False, "name": "Carol Claims-Alice"}


# ----------------------------------------------------------------------------- the claims, without a browser
def test_a_user_is_their_lower_case_email_when_the_token_has_one():
    me = user_identity({"is_logged_in": True, "sub": "123", "iss": "https://idp", "email": "Ann@X.org",
                        "email_verified": True, "name": "Ann"})
    assert (me.owner, me.name, me.logged_in, me.token) == ("user:ann@x.org", "Ann", True, None)
    assert user_identity({"is_logged_in": True, "sub": "123", "email": "ann@x.org"}).name == "ann@x.org"


def test_a_user_without_a_trusted_email_is_their_issuer_and_subject():
    no_email = user_identity({"is_logged_in": True, "sub": "123", "iss": "https://idp.example"})
    assert no_email.owner == "user:https://idp.example#123" and no_email.name == "123"
    for verified in (False, "false"):  # an address the provider did not check could be anyone's
        unverified = user_identity({"is_logged_in": True, "sub": "9", "iss": "https://idp", "email": "boss@x.org",
                                    "email_verified": verified})
        assert unverified.owner == "user:https://idp#9"
    # no email_verified claim at all: nothing said is nothing proven
    assert user_identity({"is_logged_in": True, "sub": "9", "iss": "https://idp", "email": "boss@x.org"}).owner == (
        "user:https://idp#9")
    assert user_identity({"is_logged_in": True, "sub": "9", "provider": "okta"}).owner == "user:okta#9"
    assert user_identity({"is_logged_in": True}) is None
    assert user_identity({"is_logged_in": False, "email": "a@b.c"}) is None


def test_log_in_is_in_the_sidebar_even_where_a_page_stops_early(tmp_path, monkeypatch):
    # the Runs page of an empty run store ends early (settings.end_page), before the page's last lines
    from ui.apptest import app_test

    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    at = app_test(timeout=120)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 32,
                          "client_id": "archs", "client_secret": "secret",
                          "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
    at.run()
    assert not at.exception and [b.label for b in at.sidebar.button] == ["Log in"]    # drawn once, not twice
    at.switch_page("pages/runs.py").run()
    assert not at.exception and any("No runs" in i.value for i in at.info)
    assert [b.label for b in at.sidebar.button] == ["Log in"]


def test_a_button_a_provider_where_the_secrets_name_several(tmp_path, monkeypatch):
    from ui.apptest import app_test

    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    at = app_test(timeout=120)
    provider = {"client_id": "archs", "client_secret": "secret",
                "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 32,
                          "google": provider, "okta": provider}
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    assert [b.label for b in at.sidebar.button] == ["Log in with google", "Log in with okta"]


# ----------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ok, what: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = ok()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s" + (f"; see {log}" if log else ""))
        time.sleep(0.25)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:
            return reply.status == 200
    except OSError:
        return False


def stop_group(proc: subprocess.Popen) -> None:
    """End a process group this test started, by its id."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("login")


@pytest.fixture(scope="module")
def provider(work) -> str:
    """oidc-provider-mock on a free port, with the three users put into it (``PUT /users/<sub>``)."""
    for module, pin in (("oidc_provider_mock", "oidc-provider-mock"), ("authlib", "Authlib")):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{pin} is not installed: pip install -r requirements-test.txt")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = work / "provider.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port",
                                 str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "NO_COLOR": "1"})
    try:
        wait_until(lambda: http_ok(f"{url}/.well-known/openid-configuration"), "the OIDC provider started", 60,
                   proc, log_path)
        for user in (ALICE, BOB, CAROL):
            claims = {k: v for k, v in user.items() if k != "sub"}
            request = urllib.request.Request(f"{url}/users/{user['sub']}", data=json.dumps(claims).encode(),
                                             method="PUT", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.status == 204
        yield url
    finally:
        stop_group(proc)


@pytest.fixture(scope="module")
def runs_dir(work):
    root = work / "runs"
    root.mkdir()
    yield root
    # a run left active would go on training in the executor's detached supervisor: stop it, as its owner
    try:
        from archs.training import RunStore
        from archs.training.executors import get_executor

        active = [row for row in RunStore(root).list_runs() if row["status"] in ACTIVE]
        for row in active:
            get_executor("local", root).stop(row["id"], owner=row["owner"])
    except Exception as error:  # noqa: BLE001 - cleanup only
        print(f"could not stop the runs left active in {root}: {error!r}")


@pytest.fixture(scope="module")
def server(work, provider, runs_dir) -> str:
    """The dashboard as tests/test_serve.py starts it, with an [auth] section in a secrets file of its own."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # the browser's origin must be redirect_uri's, to the letter
    secrets_file = work / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "{url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "archs-dashboard"\n'
        f'client_secret = "{secrets.token_hex(16)}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    log_path = work / "streamlit.log"
    env = {**{k: v for k, v in os.environ.items() if k != "ARCHS_ADMINS"},  # nobody may act on others' runs
           "ARCHS_RUNS_DIR": str(runs_dir), "ARCHS_EXECUTOR": "local", "ARCHS_MAX_CONCURRENT_RUNS": "1",
           "ARCHS_AUTH": "required",      # a class server: an anonymous visitor looks, and owns nothing
           "FAULTS_IDLE_SECONDS": "0.5"}  # runs idle (tests/faults.py): who owns them is tested, not training
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.port", str(port), "--server.address", "127.0.0.1",
             "--secrets.files", str(secrets_file)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        wait_until(lambda: http_ok(f"{url}/_stcore/health"), "streamlit started", 90, proc, log_path)
        yield url
    finally:
        stop_group(proc)


# ----------------------------------------------------------------------------- the run store
def archs_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "archs", *args]


def store_rows(runs_dir: Path) -> list[dict]:
    """The run store as ``python -m archs runs --json`` reads it (what the assertions check)."""
    done = subprocess.run(archs_cli("runs", "--json", "--runs-dir", str(runs_dir)), cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)["runs"]


def wait_rows(runs_dir: Path, ok, what: str, timeout: float = 120) -> list[dict]:
    """Poll the run store in this process (the CLI imports torch: seconds a call) until ``ok(rows)``."""
    from archs.training import RunStore

    store = RunStore(runs_dir)
    rows: list[dict] = []

    def check():
        rows[:] = store.list_runs()
        return ok(rows)

    wait_until(check, f"{what} (rows: {rows})", timeout)
    return rows


# ----------------------------------------------------------------------------- the browser
EXCEPTION = '[data-testid="stException"]'
WAIT = 90_000  # ms: generous, for a loaded machine (every wait is for a state, none sleeps this long)
# the script has run, and the elements whose code loads lazily (most widgets) are drawn, not placeholders
SETTLED = """() => !!document.querySelector('[data-testid="stApp"]')
                   && !document.querySelector('[data-testid="stStatusWidget"]')
                   && !document.querySelector('[data-testid="stSkeleton"]')"""
# Chromium aborts every request in flight, lazily loaded scripts included, when the host's network interfaces
# change: on a shared machine, whenever someone's container starts or stops (podman0, veth*). Seen here in
# about one run out of three, as a blank page or "Failed to fetch dynamically imported module".
NETWORK_CHANGED = "ERR_NETWORK_CHANGED"
TRIES = 4


class NetworkChanged(Exception):
    """Chromium aborted requests of the page (ERR_NETWORK_CHANGED) while it loaded: load it again."""


def network_changed(page) -> bool:
    return any(NETWORK_CHANGED in line for line in page.failed[page.mark:])


def wait_js(page, condition: str, what: str, timeout: float = WAIT, polls: int = 1) -> None:
    """Wait until the JavaScript ``condition`` holds (for ``polls`` polls in a row, 0.2 s apart).
    NetworkChanged where Chromium aborted the page's requests meanwhile: no use waiting any longer."""
    deadline = time.monotonic() + timeout / 1000
    held = 0
    while held < polls:
        if network_changed(page):
            raise NetworkChanged(page.url)
        try:
            held = held + 1 if page.evaluate(condition) else 0
        except Exception:  # noqa: BLE001 - the page is navigating: its old document is gone
            held = 0
        if time.monotonic() > deadline:
            pytest.fail(f"{page.url}: {what} not within {timeout / 1000:.0f} s")
        page.wait_for_timeout(200)


def settle(page, timeout: float = WAIT) -> None:
    """Wait until Streamlit has finished running the script and drawing its elements (SETTLED, three polls
    in a row), and check that it shows no exception."""
    wait_js(page, SETTLED, "the script run and its elements", timeout, polls=3)
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()


def again_if_network_changed(page, what: str, action):
    """Run ``action(first)`` (safe to repeat; a repeat, ``first`` false, must load its page afresh); where
    Chromium aborted the page's requests meanwhile, run it again (at most TRIES times)."""
    for attempt in range(1, TRIES + 1):
        page.mark = len(page.failed)
        try:
            return action(attempt == 1)
        except Exception:
            if attempt == TRIES or not network_changed(page):
                raise
            print(f"  Chromium aborted requests (network changed) during {what}: try {attempt + 1}", flush=True)


OPENED: list = []      # every page the test opened, for the failure report


def new_page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1400})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    page.failed, page.mark = [], 0   # requests that failed, and console errors: in the failure report
    page.on("requestfailed", lambda r: page.failed.append(f"{time.strftime('%X')} {r.failure} {r.method} {r.url}"))
    page.on("console", lambda m: m.type == "error" and page.failed.append(f"{time.strftime('%X')} console: {m.text}"))
    OPENED.append(page)
    return page


@pytest.fixture
def pages_kept_on_failure(work, request):
    """Where the test fails, each browser's page as HTML and PNG, and its failed requests, beside the logs; then
    every browser the test opened is closed (its context: the test session's Chromium stays)."""
    failed = request.session.testsfailed
    yield
    for i, page in enumerate(OPENED if request.session.testsfailed > failed else ()):
        try:
            (work / f"page-{i}.failed.txt").write_text("\n".join(page.failed) + "\n")
            (work / f"page-{i}.html").write_text(page.content())
            page.screenshot(path=work / f"page-{i}.png", full_page=True)
        except Exception:  # noqa: BLE001 - a closed page
            pass
    for page in OPENED:
        try:
            page.context.close()
        except Exception:  # noqa: BLE001 - closed already
            pass
    OPENED.clear()


def logged_in_as(page, name: str) -> bool:
    return page.get_by_text(f"Logged in as {name}").count() > 0


def log_in(page, server: str, user: dict, at: str = "/runs") -> None:
    """Press the sidebar's Log in on page ``at``, type the subject into the provider's form, come back
    logged in. The Runs page of an empty run store ends early (``settings.end_page``): Log in is there all the same.
    The first session of a fresh server must open "/": a page's own address runs that page file alone."""

    def attempt(first: bool):
        page.goto(f"{server}{at}")
        settle(page)
        if logged_in_as(page, user["name"]):        # an earlier try got as far as the provider's cookie
            return
        button(page, "login").click()
        page.locator('input[name="sub"]').fill(user["sub"])           # the provider's own page
        page.get_by_role("button", name="Authorize").click()
        page.wait_for_url(re.compile(re.escape(server) + r"/?(\?.*)?$"))
        # the sidebar says so before the page is drawn: no need to wait for the Build page
        wait_js(page, f"() => document.body.innerText.includes({json.dumps('Logged in as ' + user['name'])})",
                "the sidebar's 'Logged in as'")

    again_if_network_changed(page, f"{user['sub']}'s log in", attempt)
    assert logged_in_as(page, user["name"]) and button(page, "login").count() == 0


def log_out(page, server: str) -> None:
    """The sidebar's Log out (on the page the browser is on), the provider's end-session page, back to the
    dashboard."""

    def attempt(first: bool):
        if not first:
            page.goto(f"{server}/")
            settle(page)
        if button(page, "logout").count():
            button(page, "logout").click()
            page.get_by_role("button", name="End session").click()        # the provider's own page
            page.wait_for_url(re.compile(re.escape(server) + r"/?(\?.*)?$"))
            # the sidebar's Log in comes before the page is drawn: no need to wait for the Build page
            wait_js(page, "() => !!document.querySelector('.st-key-login button')", "the sidebar's Log in")

    again_if_network_changed(page, "log out", attempt)
    assert page.get_by_text("Logged in as").count() == 0


PAGE_TITLES = {"/runs": "Runs", "/train": "Train"}


def go(page, server: str, path: str, fresh: bool = False) -> None:
    """Open the dashboard's page ``path`` ("/runs", "/train"). Where the browser is on the dashboard already and
    ``fresh`` is false, by the sidebar's link, as a person moves between pages: the page's script runs in the same
    session and Chromium loads nothing afresh (CI: the login test loaded the front end 8 times fewer, and a load
    costs its renderer 3-5 CPU-s). Else (``fresh``: a new session; or from the provider's pages) by its address."""
    link = page.get_by_role("link", name=PAGE_TITLES[path], exact=True)
    if not fresh and page.url.startswith(server) and link.count():
        link.first.click()
        page.wait_for_url(re.compile(re.escape(server + path) + r"(\?.*)?$"))
    else:
        page.goto(f"{server}{path}")
    settle(page)


def start_run(page, server: str, *, epochs: int, max_steps: int | None = None) -> None:
    """Start a run on the Train page (the network is the Build page's default; data set digits, offline)."""
    from playwright.sync_api import expect

    def settings(first: bool):
        go(page, server, "/train", fresh=not first)
        for key, value in (("train-epochs", epochs), ("train-max_steps", max_steps)):
            if value is not None:
                box = page.locator(f".st-key-{key} input")
                box.fill(str(value))
                box.press("Enter")
                settle(page)
                expect(box).to_have_value(str(value), timeout=WAIT)

    again_if_network_changed(page, "the Train page's settings", settings)
    button(page, "train_start").click()            # once: the caller waits for the run in the store
    try:
        settle(page)
    except NetworkChanged:
        pass


def pick_run(page, server: str, run_id: str, fresh: bool = False) -> None:
    """Pick one run in the Runs page's "One run" box (``fresh``: in a new session of the page; else in the page's
    own: where it is on the Runs page already, there, else by the sidebar's link)."""
    from playwright.sync_api import expect

    def attempt(first: bool):
        if not first or fresh or not page.url.split("?")[0].endswith("/runs"):
            go(page, server, "/runs", fresh=fresh or not first)
        box = page.locator(".st-key-runs_pick").get_by_role("combobox")
        box.click()
        page.get_by_role("option").filter(has_text=run_id).click()
        settle(page)
        expect(box).to_have_value(re.compile(re.escape(run_id)), timeout=WAIT)

    again_if_network_changed(page, f"picking {run_id}", attempt)


def picked(page) -> str:
    """The picked run as the "One run" box reads: "label · status · owner · id"."""
    return page.locator(".st-key-runs_pick").get_by_role("combobox").input_value()


def owner_column(page) -> list[str]:
    """The Runs table's Owner column, sorted (the grid's accessible table: its visible columns only)."""
    grid = page.locator('[data-testid="stDataFrame"] table[role="grid"]')
    grid.locator('td[role="gridcell"]').first.wait_for(state="attached")
    column = grid.locator('th[role="columnheader"]').all_inner_texts().index("Owner") + 1
    return sorted(grid.locator(f'td[role="gridcell"][aria-colindex="{column}"]').all_inner_texts())


def button(page, key: str):
    """The button keyed ``key`` (a button with help= is drawn twice, once hidden: the visible one)."""
    return page.locator(f".st-key-{key}").get_by_role("button")


def stop_run(page, server: str, run_id: str, runs_dir: Path) -> None:
    """Press Stop on the picked run (again, on a fresh page, where the page lost its requests meanwhile
    and the run is still active)."""
    from archs.training import RunStore

    def attempt(first: bool):
        if not first:
            if all(r["status"] not in ACTIVE for r in RunStore(runs_dir).list_runs() if r["id"] == run_id):
                return
            pick_run(page, server, run_id, fresh=True)
        button(page, "runs_stop").click()
        settle(page)

    again_if_network_changed(page, "Stop", attempt)


def click_disabled(page, key: str) -> None:
    """Click a disabled button (nothing should happen), then move the pointer off its tooltip."""
    button(page, key).click(force=True)
    page.mouse.move(1, 1)
    try:
        settle(page)
    except NetworkChanged:
        pass  # the page may have lost its scripts, but no click went through: the caller's checks follow
    page.wait_for_function(  # its help tooltip ("Started by …: only they can …") would cover the next click
        "() => !(document.querySelector('#stFloatingOverlayPortal')?.innerText || '').includes('only they can')")


def buttons(page) -> dict[str, bool | None]:
    """Whether the Runs page's Stop and Delete… buttons are enabled (None: not shown)."""
    found = {}
    for name, key in (("stop", "runs_stop"), ("delete", "runs_delete")):
        found[name] = button(page, key).is_enabled() if button(page, key).count() else None
    return found


# ----------------------------------------------------------------------------- the test
def test_two_users_in_two_browsers_own_their_runs_and_log_out(browser, server, provider, runs_dir, work,
                                                             pages_kept_on_failure):
    start = time.monotonic()

    def phase(name: str) -> None:  # shown where the test fails: how long each part took on this machine
        print(f"{time.monotonic() - start:6.1f} s  {name}", flush=True)

    alice, bob, again = new_page(browser), new_page(browser), new_page(browser)
    log_in(alice, server, ALICE, at="/")
    log_in(bob, server, BOB)
    log_in(again, server, ALICE)           # Alice in a third browser
    alice_owner, bob_owner = "user:alice@example.org", f"user:{provider}#{BOB['sub']}"  # Bob's is not verified
    phase("three browsers logged in")

    # Bob: a short run. Alice: a long one, still active (queued behind Bob's, or training) until she stops it
    start_run(bob, server, epochs=1, max_steps=2)
    rows = wait_rows(runs_dir, lambda rs: any(r["owner"] == bob_owner for r in rs), "Bob's run recorded")
    bob_run = next(r["id"] for r in rows if r["owner"] == bob_owner)
    start_run(alice, server, epochs=200)
    rows = wait_rows(runs_dir, lambda rs: any(r["owner"] == alice_owner for r in rs), "Alice's run recorded")
    alice_run = next(r["id"] for r in rows if r["owner"] == alice_owner)
    assert next(r["status"] for r in rows if r["id"] == alice_run) in ACTIVE
    phase("two runs started")

    # Bob sees Alice's active run and can neither stop nor delete it; his own he can delete
    pick_run(bob, server, alice_run)
    assert owner_column(bob) == ["Alice Liddell", "you"]
    assert picked(bob).endswith(f" · Alice Liddell · {alice_run}")
    assert buttons(bob) == {"stop": False, "delete": False}
    click_disabled(bob, "runs_delete")
    assert bob.locator(".st-key-runs_delete_yes").count() == 0
    bob.screenshot(path=work / "runs-bob.png", full_page=True)
    pick_run(bob, server, bob_run, fresh=False)
    assert picked(bob).endswith(f" · you · {bob_run}") and buttons(bob)["delete"] is True
    phase("Bob's view checked")

    # Alice's third browser: the same owner, so the same runs are hers there; she stops the long one
    pick_run(again, server, alice_run)
    assert owner_column(again) == ["Bob Builder", "you"] and picked(again).endswith(f" · you · {alice_run}")
    assert buttons(again) == {"stop": True, "delete": True}
    stop_run(again, server, alice_run, runs_dir)
    wait_rows(runs_dir, lambda rs: any(r["id"] == alice_run and r["status"] == "stopped" for r in rs),
              "Alice's run stopped from her other browser")
    phase("Alice's run stopped from her third browser")

    # Alice's first browser: Bob's run is not hers
    pick_run(alice, server, bob_run)
    assert owner_column(alice) == ["Bob Builder", "you"]
    assert picked(alice).endswith(f" · Bob Builder · {bob_run}")
    assert buttons(alice)["delete"] is False and buttons(alice)["stop"] in (False, None)
    click_disabled(alice, "runs_delete")
    assert alice.locator(".st-key-runs_delete_yes").count() == 0
    pick_run(alice, server, alice_run, fresh=False)
    assert picked(alice).endswith(f" · you · {alice_run}") and buttons(alice)["delete"] is True
    alice.screenshot(path=work / "runs-alice.png", full_page=True)
    assert {alice_run, bob_run} <= {r["id"] for r in wait_rows(runs_dir, bool, "the runs")}  # both still there
    phase("Alice's view checked")

    # Log out: the provider's end-session page, then back to the dashboard, anonymous and owning nothing:
    # under ARCHS_AUTH=required, a visitor who may look at every run and start, stop or delete none
    log_out(again, server)
    pick_run(again, server, alice_run, fresh=True)  # a fresh session: the login cookie is gone, not only st.user
    assert owner_column(again) == ["Alice Liddell", "Bob Builder"]
    assert picked(again).endswith(f" · Alice Liddell · {alice_run}")
    assert buttons(again)["delete"] is False and button(again, "login").is_visible()
    assert "session=" not in again.url and again.get_by_text("Log in to start runs").count() > 0
    again.screenshot(path=work / "runs-logged-out.png", full_page=True)

    def train_page(first: bool):
        again.goto(f"{server}/train")
        settle(again)

    again_if_network_changed(again, "the Train page, logged out", train_page)
    assert button(again, "train_start").is_disabled()
    assert again.get_by_text("Log in to start runs").count() > 0
    assert not [r for r in wait_rows(runs_dir, bool, "the runs") if r["id"] not in (alice_run, bob_run)]
    phase("logged out")

    # a user whose token claims Alice's address, unverified: the owner is the issuer and the subject, not Alice
    log_in(again, server, CAROL)
    start_run(again, server, epochs=1, max_steps=1)
    carol_owner = f"user:{provider}#{CAROL['sub']}"
    rows = wait_rows(runs_dir, lambda rs: any(r["owner"] == carol_owner for r in rs), "the unverified user's run")
    carol_run = next(r["id"] for r in rows if r["owner"] == carol_owner)
    pick_run(again, server, carol_run)
    assert owner_column(again) == ["Alice Liddell", "Bob Builder", "you"]
    assert picked(again).endswith(f" · you · {carol_run}")
    pick_run(again, server, alice_run, fresh=False)       # Alice's address in her token does not make her Alice
    assert picked(again).endswith(f" · Alice Liddell · {alice_run}") and buttons(again)["delete"] is False
    phase("the user with an unverified email checked")

    # the run store as the CLI reads it: every run there, each its owner's (Carol's may still be training:
    # the runs_dir fixture stops what is still active)
    owners = {r["id"]: (r["owner"], r["owner_name"]) for r in store_rows(runs_dir)}
    assert owners == {alice_run: (alice_owner, "Alice Liddell"), bob_run: (bob_owner, "Bob Builder"),
                      carol_run: (carol_owner, "Carol Claims-Alice")}
    phase("done")
    for page in (alice, bob, again):
        page.context.close()
