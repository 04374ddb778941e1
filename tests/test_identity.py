"""Who owns what, tried as an attacker would, through AppTest (the browser's cookie round trip is in
tests/test_browser_identity.py, log in against a real provider in tests/test_login.py).

- A ``?session=`` key in a link is never adopted: the reader of a link carrying the sender's key is someone
  else, told so, and the key leaves the address. The key is never written into the address.
- The browser keeps its key in a cookie (``SameSite=Strict``), written by the page of the session that minted
  it; a session opened with that cookie is the same owner, whatever key a link carries.
- ``ARCHS_AUTH=required``: an anonymous visitor looks at every page but owns nothing: Start, Stop, Delete and
  the studies' and sweeps' buttons are disabled with a message, and a click forged past a disabled button
  (what a hostile websocket client can send) starts nothing, because the identity has no owner to start with.
- An OIDC email is the owner only when ``email_verified`` is the boolean true.
"""

from __future__ import annotations

import re

import pytest
from app_helpers import assert_clean, open_app, run, stop_all, texts

from archs.training import LimitError, RunError, RunRequest, RunStore
from ui import identity
from ui.apptest import app_test
from ui.identity import LOG_IN_TO_ACT, Identity, LoginRequired, owner_of_token, user_identity

SENDER = "the-senders-own-key-0001"
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 32, "client_id": "archs",
        "client_secret": "secret", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("ARCHS_AUTH", raising=False)
    monkeypatch.delenv("ARCHS_ADMINS", raising=False)
    yield tmp_path / "runs"
    stop_all(tmp_path / "runs")


def opened_by_link(page: str = "pages/build.py", secrets: dict | None = None, **query: str):
    """A browser without our cookie opening a link (AppTest sends no cookies)."""
    at = app_test(timeout=120, query={"preset": "cifar-resnet20", **query})
    if secrets is not None:
        at.secrets["auth"] = secrets
    at.run()
    assert_clean(at)
    if page != "pages/build.py":
        run(at.switch_page(page))
    return at


def cookie_writers(at) -> list[str]:
    return [h.value for h in at.sidebar.html if identity.COOKIE in h.value]


# ----------------------------------------------------------------------------- a key from a link
def test_a_link_carrying_someones_session_key_makes_its_reader_someone_else_and_says_so(runs_dir):
    victim = opened_by_link(session=SENDER)
    me = victim.session_state["_identity"]
    assert me.owner != owner_of_token(SENDER) and me.token != SENDER
    assert "session" not in victim.query_params                       # the address no longer carries it
    assert "session key" in texts(victim.warning) and "yours, not theirs" in texts(victim.warning)
    # and the victim's browser keeps a key of its own, not the sender's
    [writer] = cookie_writers(victim)
    assert f"{identity.COOKIE}={me.token}" in writer and SENDER not in writer and "SameSite=Strict" in writer
    run(victim.switch_page("pages/train.py"))
    assert victim.session_state["_identity"] == me and "session" not in victim.query_params


def test_a_minted_key_is_never_written_into_the_address(runs_dir):
    at = opened_by_link()
    me = at.session_state["_identity"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", me.token) and me.owner == owner_of_token(me.token)
    for page in ("pages/compare.py", "pages/train.py", "pages/runs.py"):
        run(at.switch_page(page))
        assert "session" not in at.query_params and me.token not in str(at.query_params)
    assert me.token not in texts(at.sidebar.caption, raw=True)         # nor in the share link


@pytest.mark.parametrize("key", ["", "x" * 5000, "../../etc/passwd", "<script>alert(1)</script>", "a b c d e f g h i j"])
def test_any_text_as_a_link_s_key_is_dropped_without_an_error(runs_dir, key):
    at = opened_by_link(session=key)
    assert at.session_state["_identity"].token != key and "session" not in at.query_params


def test_the_browser_s_cookie_is_the_owner_whatever_key_the_link_carries(runs_dir, monkeypatch):
    mine = "this-browsers-cookie-key-0001"
    monkeypatch.setattr(identity, "_cookie_token", lambda: mine)        # what st.context.cookies would hold
    reload = opened_by_link()
    assert reload.session_state["_identity"].owner == owner_of_token(mine)
    assert not cookie_writers(reload) and not texts(reload.warning)     # nothing to write, nothing to say
    linked = opened_by_link(session=SENDER)
    assert linked.session_state["_identity"].owner == owner_of_token(mine)
    assert "session key" in texts(linked.warning)
    own = opened_by_link(session=mine)                                  # its own key (an old address): silent
    assert own.session_state["_identity"].owner == owner_of_token(mine) and not texts(own.warning)


def test_a_cookie_that_is_not_one_of_our_keys_is_replaced(runs_dir, monkeypatch):
    from streamlit.runtime.context import StreamlitCookies

    sent = StreamlitCookies({identity.COOKIE: "short"})
    monkeypatch.setattr(type(identity.st.context), "cookies", property(lambda self: sent))
    at = opened_by_link()
    me = at.session_state["_identity"]
    assert me.token != "short" and f"{identity.COOKIE}={me.token}" in cookie_writers(at)[0]


# ----------------------------------------------------------------------------- ARCHS_AUTH=required
def test_an_anonymous_identity_under_required_log_in_has_no_owner_to_act_with():
    visitor = Identity(None, "a visitor", False, None)
    assert not visitor.may_act
    with pytest.raises(LoginRequired, match="Log in to start runs"):
        RunRequest(None, owner=visitor.owner)  # what a page submits with
    assert issubclass(LoginRequired, LimitError) and issubclass(LoginRequired, RunError)  # every page's except
    assert Identity("user:a@b.c", "A", True, None).may_act


@pytest.mark.parametrize("value, required", [(None, False), ("", False), ("optional", False), ("off", False),
                                             ("required", True), ("REQUIRED ", True), ("requried", True)])
def test_archs_auth_fails_closed_on_a_value_it_does_not_know(monkeypatch, value, required):
    if value is None:
        monkeypatch.delenv("ARCHS_AUTH", raising=False)
    else:
        monkeypatch.setenv("ARCHS_AUTH", value)
    assert identity.login_required() is required


def test_an_anonymous_visitor_under_required_log_in_looks_but_starts_stops_and_deletes_nothing(runs_dir,
                                                                                             monkeypatch):
    import archs

    monkeypatch.setenv("ARCHS_AUTH", "required")
    spec = archs.PRESETS["cifar-resnet20"]
    store = RunStore(runs_dir)
    theirs = store.create(RunRequest(spec, owner="user:someone@x.org", owner_name="Someone"))
    theirs.write_status(status="completed")      # (a queued run would start training in the page's executor)
    theirs = theirs.id
    at = opened_by_link(secrets=AUTH, session=SENDER)
    me = at.session_state.get("_identity") if "_identity" in at.session_state else None
    assert me is None and not cookie_writers(at)                  # no key minted: nothing to own with
    assert LOG_IN_TO_ACT in texts(at.sidebar.caption)
    assert [b.label for b in at.sidebar.button] == ["Log in"]

    run(at.switch_page("pages/train.py"))
    start = at.button(key="train_start")
    assert start.disabled and LOG_IN_TO_ACT in texts(at.caption)
    start.proto.disabled = False           # a click a hostile client sends for the disabled button anyway
    run(start.click())                     # (Streamlit discards it; were it not, .owner would raise)
    assert [r["id"] for r in store.list_runs()] == [theirs]

    run(at.switch_page("pages/runs.py"))
    assert LOG_IN_TO_ACT in texts(at.info)
    assert at.button(key="runs_delete").disabled
    assert "Log in first" in at.button(key="runs_delete").help
    at.button(key="runs_delete").proto.disabled = False
    run(at.button(key="runs_delete").click())
    assert [b for b in at.button if b.key == "runs_delete_yes"] == []
    at.segmented_control(key="runs_whose").set_value("mine")
    run(at)
    assert any("No runs" in t for t in (texts(at.info), texts(at.caption), texts(at.markdown)))

    run(at.switch_page("pages/studies.py"))
    for key in ("study_claim_start", "study_sweep_start", "study_search_start"):
        assert at.button(key=key).disabled
    assert [r["id"] for r in store.list_runs()] == [theirs]        # untouched


def test_required_log_in_without_an_auth_section_lets_nobody_act_and_says_so(runs_dir, monkeypatch):
    monkeypatch.setenv("ARCHS_AUTH", "required")
    at = opened_by_link(page="pages/train.py")
    assert at.button(key="train_start").disabled
    assert "nobody can start runs" in texts(at.sidebar.caption)


def test_without_required_log_in_an_anonymous_visitor_still_owns_their_runs(runs_dir):
    at = open_app(preset="resnet18", session="a-browser-of-its-own-01")
    run(at.switch_page("pages/train.py"))
    assert not at.button(key="train_start").disabled and LOG_IN_TO_ACT not in texts(at.caption)


# ----------------------------------------------------------------------------- the claims
ISSUER = "https://idp.example"


@pytest.mark.parametrize("verified", [None, False, "true", "True", 1, "yes"])
def test_an_email_the_provider_does_not_vouch_for_is_not_the_owner(verified):
    claims = {"is_logged_in": True, "iss": ISSUER, "sub": "mallory-1", "email": "Alice@Example.org",
              "name": "Mallory"}
    if verified is not None:
        claims["email_verified"] = verified
    me = user_identity(claims)
    assert me.owner == f"user:{ISSUER}#mallory-1" and me.name == "Mallory"
    assert user_identity({**claims, "name": None}).name == "Alice@Example.org"   # shown, not trusted


def test_an_email_the_provider_vouches_for_is_the_owner_lower_case():
    me = user_identity({"is_logged_in": True, "iss": ISSUER, "sub": "1", "email": "Alice@Example.org",
                        "email_verified": True})
    assert me.owner == "user:alice@example.org" and me.name == "Alice@Example.org" and me.may_act
