"""Who is using the dashboard: the owner recorded with each run they start.

Only a run's owner may stop or delete it; everyone sees every run.

- Where ``st.login`` is configured (an ``[auth]`` section in the secrets, OIDC, and Authlib installed), the
  owner is the logged-in user, the same in every browser they log in from: ``user:<email>`` (lower case)
  where the provider's ID token says ``email_verified: true`` (the boolean), else ``user:<issuer>#<sub>``
  (the subject is unique only within its issuer, and an address the provider did not check could be
  anyone's). A missing ``email_verified`` is not a yes.
- ``ARCHS_AUTH=required``: an anonymous visitor may look at everything but owns nothing, so may start, stop
  or delete nothing. Their identity has no owner: asking it for one raises ``LoginRequired``, a refusal the
  pages already show wherever they show a limit or a run's refusal, so a page that forgets to disable a
  button still starts nothing. Every per-owner limit is then a limit per person.
- Otherwise an anonymous visitor is their browser: a random key minted on the browser's first visit and kept
  in a cookie (``archs_session``, ``SameSite=Strict``, written by a small script the page runs once), read
  back by the server from the request that opens each new session (``st.context.cookies``). Every tab and
  every reload of that browser is the same owner. The key is never in the address, and a ``?session=`` key
  in a link (as this dashboard used to write) is never adopted: the page drops it and says so, so a link
  cannot make its reader act as its sender (session fixation). The run store keeps only a hash of the key.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from archs.training.limits import LimitError
from archs.training.store import RunError
from ui import fmt

PARAM = "session"         # the key's old place in the address: read only to drop it, never adopted
COOKIE = "archs_session"  # the browser's key
AUTH = "ARCHS_AUTH"       # "required": only logged-in users own runs; unset or "optional": anyone may
_COOKIE_DAYS = 400        # Chromium's cap on a cookie's lifetime
_STATE = "_identity"
_WRITE = "_identity_cookie"   # this session minted its key: the page writes it into the browser's cookie
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_DRAWN = "_identity_controls_drawn"  # remember() has drawn Log in / Log out in this script run
_VIEWER = "_identity_viewer"  # the key of a visitor who owns nothing and sent no cookie: see viewer()
# what makes a table of the [auth] section a provider's (Streamlit's own test, in its auth routes)
_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url", "authorize_url", "api_base_url",
                  "request_token_url")
LOG_IN_TO_ACT = "Log in to start runs: on this server only logged-in users start, stop or delete them."


class LoginRequired(LimitError, RunError):
    """An anonymous visitor asked to act (start, stop or delete a run) where ``ARCHS_AUTH=required``. Both a
    limit and a refused run action, so that every page's existing ``except`` shows it as a message."""

    def __init__(self) -> None:
        super().__init__(LOG_IN_TO_ACT, AUTH)


@dataclass(frozen=True)
class Identity:
    as_owner: str | None  # what the run store records for what they start; None: they must log in first
    name: str             # what pages show
    logged_in: bool
    token: str | None     # the browser's key (None for a logged-in user, or an anonymous one who owns nothing)

    @property
    def may_act(self) -> bool:
        """Whether they may start runs (and stop or delete their own)."""
        return self.as_owner is not None

    @property
    def owner(self) -> str:
        """The owner to submit, stop or delete with; ``LoginRequired`` for a visitor who owns nothing."""
        if self.as_owner is None:
            raise LoginRequired()
        return self.as_owner


def _auth_section() -> Mapping[str, Any] | None:
    try:
        section = st.secrets.get("auth")
    except Exception:  # noqa: BLE001 - no secrets file, or one that does not parse: no login
        return None
    return section if isinstance(section, Mapping) else None


def auth_configured() -> bool:
    """True where the secrets have an ``[auth]`` section (``st.login`` can be used)."""
    return _auth_section() is not None


def login_required() -> bool:
    """``ARCHS_AUTH=required``: anonymous visitors own nothing. A value other than "", "optional" and "off"
    counts as required too (a typo in a class server's setting must not leave it open)."""
    return os.environ.get(AUTH, "").strip().lower() not in ("", "optional", "off")


def providers() -> list[str]:
    """The providers ``st.login`` can be called with: ``"default"`` for the flat ``[auth]`` keys, and the
    name of each ``[auth.<name>]`` table."""
    section = _auth_section() or {}
    named = [name for name, value in section.items()
             if isinstance(value, Mapping) and any(key in value for key in _PROVIDER_KEYS)]
    flat = any(key in section for key in _PROVIDER_KEYS)
    return (["default"] if flat or not named else []) + named


def owner_of_token(token: str) -> str:
    return "session:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def viewer_of_token(token: str) -> str:
    """The name, among visitors who own nothing, of the one whose key is ``token`` (a hash: a name is shown on
    the Runs page, a key never is)."""
    return "visitor " + hashlib.sha256(b"viewer:" + token.encode()).hexdigest()[:8]


def viewer() -> str:
    """Which visitor this is, among those who own nothing (``ARCHS_AUTH=required``), for what they share: the
    quick jobs their pages start, all in one owner's name (``ui/jobs.py``). Their browser's key where it sends our
    cookie (its tabs are one visitor), else a key of this session's own, never written into a cookie: they own
    nothing, and a key is minted only to own with. As strong as the visitor lets it be: a session opened without
    the cookie (a new tab then, or a script) is a new visitor; only what they share together bounds them all."""
    token = _cookie_token()
    if token is None:
        token = st.session_state.setdefault(_VIEWER, secrets.token_urlsafe(24))
    return viewer_of_token(token)


def browser_identity(token: str) -> Identity:
    """The anonymous owner that the browser holding ``token`` in its cookie is."""
    owner = owner_of_token(token)
    return Identity(owner, f"session {owner[-4:]}", False, token)


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def user_identity(claims: Mapping[str, Any]) -> Identity | None:
    """The identity of a logged-in user from the claims of their ID token (what ``st.user`` holds);
    None where they name nobody. Providers differ: Google and Microsoft send ``email`` with
    ``email_verified: true``; some send ``email_verified: false`` (an address the user typed, not proven
    theirs), some no ``email_verified`` at all (nothing said is nothing proven), some no email, only ``sub``,
    which is unique within its issuer ``iss`` only. An email is the owner only when the provider vouches for
    it (``email_verified`` the boolean true, not a string), else the issuer and the subject are; the email,
    if any, is still the name shown."""
    if not claims.get("is_logged_in", True):
        return None
    email = _text(claims, "email")
    if email and "@" in email and claims.get("email_verified") is True:
        owner = "user:" + email.lower()
    else:
        sub = _text(claims, "sub")
        if sub is None:
            return None
        issuer = _text(claims, "iss") or _text(claims, "provider") or "unknown"
        owner = f"user:{issuer}#{sub}"
    name = (_text(claims, "name") or _text(claims, "preferred_username") or email or _text(claims, "sub")
            or owner)
    return Identity(owner, name, True, None)


def _logged_in_user() -> Identity | None:
    if not auth_configured():
        return None
    try:
        claims = st.user.to_dict()
    except Exception:  # noqa: BLE001 - outside a script run, or an st.user without to_dict
        return None
    return user_identity(claims) if claims.get("is_logged_in") else None


def _cookie_token() -> str | None:
    """The key this browser sent in its cookie when it opened this session, if it is one of ours."""
    try:
        token = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - outside a server's script run (a bare script, a test)
        return None
    return token if isinstance(token, str) and _TOKEN.match(token) else None


def current() -> Identity:
    """The identity of this session: the logged-in user; else, where login is required, a visitor who owns
    nothing; else this browser's (its cookie's key, or one minted now; decided on the session's first run,
    then kept in session state)."""
    user = _logged_in_user()
    if user is not None:
        return user
    if login_required():
        return Identity(None, "a visitor (not logged in)", False, None)
    identity = st.session_state.get(_STATE)
    if identity is None:
        token = _cookie_token()
        if token is None:
            token = secrets.token_urlsafe(24)
            st.session_state[_WRITE] = True
        identity = browser_identity(token)
        st.session_state[_STATE] = identity
    return identity


def remember() -> None:
    """On every run, before the page: drop a session key from the address (never adopted: see the module's
    docstring; the page says so); have the browser keep a key this session minted (its cookie); and, where
    login is configured, draw the sidebar's Log in / Log out now, before the page runs, so that they are there
    whatever the page does (a page's early end, ``settings.end_page``, is caught before ``login_controls()``;
    ``st.stop()``, as in this module, is not)."""
    identity = current()
    linked = st.query_params.get(PARAM)
    if linked is not None:
        del st.query_params[PARAM]
        if linked != identity.token:
            from ui import draft  # here: the app has it loaded; the module stays light (no torch) for the CLI's tests

            note = ("This link carried someone's session key: it is not used here, so what you start is yours, "
                    "not theirs." + ("" if identity.may_act or identity.logged_in else " " + LOG_IN_TO_ACT))
            st.session_state[draft.NOTICE] = " ".join(filter(None, [st.session_state.get(draft.NOTICE), note]))
    if st.session_state.get(_WRITE) and identity.token is not None and not identity.logged_in:
        _write_cookie(identity.token)
    if auth_configured():
        st.session_state[_DRAWN] = True
        _draw_controls()
    elif login_required():
        st.sidebar.caption(f"This server requires log in ({AUTH}), but has no `[auth]` section in its secrets: "
                           "nobody can start runs.")


def _write_cookie(token: str) -> None:
    """Have the browser keep this session's key in its cookie, so its next sessions (a reload, another tab)
    are the same owner. ``SameSite=Strict``: never sent by a request another site's page starts."""
    script = ("<script>document.cookie = " + json.dumps(f"{COOKIE}={token}; Path=/; Max-Age={_COOKIE_DAYS * 86400}"
                                                         "; SameSite=Strict")
              + " + (location.protocol === 'https:' ? '; Secure' : '');</script>")
    st.sidebar.html(script, unsafe_allow_javascript=True)


def describe(owner: str | None, owner_name: str | None) -> str:
    """How a run's owner reads on a page: "you", a user's name, a session's short name, or the command line's
    user."""
    if owner is None:
        return "nobody"
    if owner == current().as_owner:
        return "you"
    if owner.startswith("cli:") and owner_name in (None, owner):
        return f"command line ({owner[4:]})"
    return owner_name or owner


def _log_in(provider: str) -> None:
    try:
        st.login(None if provider == "default" else provider)
    except st.errors.StreamlitAPIException as error:  # a misconfigured [auth] section: say so, no traceback
        st.sidebar.error(f"Log in failed: {fmt.plain(error)}", icon=":material/error:")
    else:
        st.stop()  # the browser is on its way to the provider: no need to draw the page


def login_controls() -> None:
    """Log in / out buttons in the sidebar, where login is configured (nothing where ``remember()`` has
    drawn them already in this script run)."""
    if st.session_state.pop(_DRAWN, False) or not auth_configured():
        return
    _draw_controls()


def _draw_controls() -> None:
    user = _logged_in_user()
    if user is not None:
        st.sidebar.caption(f"Logged in as **{fmt.plain(user.name, 80)}**.")
        if st.sidebar.button("Log out", key="logout"):
            st.logout()
            st.stop()  # the browser is on its way out: no need to draw the page
        return
    if importlib.util.find_spec("authlib") is None:
        st.sidebar.caption("Log in is configured, but this server lacks Authlib (`pip install Authlib`).")
        return
    if login_required():
        st.sidebar.caption(LOG_IN_TO_ACT)
    helptext = "Your runs then follow you from browser to browser."
    names = providers()
    for name in names:  # a button a provider: plain "Log in" for the flat [auth] keys' (or the only provider's)
        plain = name == "default" or len(names) == 1
        if st.sidebar.button("Log in" if plain else f"Log in with {name}", key="login" if plain else f"login_{name}",
                             help=helptext):
            _log_in(name)
