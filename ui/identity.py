"""Who is using the dashboard: the owner recorded with each run they start.

Only a run's owner may stop or delete it; everyone sees every run.

- Where ``st.login`` is configured (an ``[auth]`` section in the secrets, OIDC, and Authlib installed), the
  owner is the logged-in user, the same in every browser they log in from: ``user:<email>`` (lower case),
  or, where the provider's ID token has no email or says it is not verified, ``user:<issuer>#<sub>`` (the
  subject is unique only within its issuer, and an unverified address could be anyone's).
- Otherwise the owner is the browser session: a random key, kept in the address as ``?session=…`` so a
  reload (a new Streamlit session) keeps it. The run store keeps only a hash of the key, so reading the
  runs folder or the Runs page does not reveal it. It protects a user's runs from the other users'
  clicks; it does not protect them from someone who has their full address (the key is in it), and a
  user who drops it from the address becomes someone new. The sidebar's share link leaves it out.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from ui import fmt

PARAM = "session"
_STATE = "_identity"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_DRAWN = "_identity_controls_drawn"  # remember() has drawn Log in / Log out in this script run
# what makes a table of the [auth] section a provider's (Streamlit's own test, in its auth routes)
_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url", "authorize_url", "api_base_url",
                  "request_token_url")


@dataclass(frozen=True)
class Identity:
    owner: str          # what the run store records
    name: str           # what pages show
    logged_in: bool
    token: str | None   # the session key (None for a logged-in user)


def _auth_section() -> Mapping[str, Any] | None:
    try:
        section = st.secrets.get("auth")
    except Exception:  # noqa: BLE001 - no secrets file, or one that does not parse: no login
        return None
    return section if isinstance(section, Mapping) else None


def auth_configured() -> bool:
    """True where the secrets have an ``[auth]`` section (``st.login`` can be used)."""
    return _auth_section() is not None


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


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def user_identity(claims: Mapping[str, Any]) -> Identity | None:
    """The identity of a logged-in user from the claims of their ID token (what ``st.user`` holds);
    None where they name nobody. Providers differ: Google and Microsoft send ``email``, some send it with
    ``email_verified: false`` (an address the user typed, not proven theirs), some (or some scopes) send no
    email at all, only ``sub``, which is unique within its issuer ``iss`` only."""
    if not claims.get("is_logged_in", True):
        return None
    email = _text(claims, "email")
    verified = claims.get("email_verified", True)
    if isinstance(verified, str):
        verified = verified.strip().lower() != "false"
    if email and "@" in email and verified is not False:
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


def current() -> Identity:
    """The identity of this session: the logged-in user, else the session key's (decided on the session's
    first run, then kept in session state)."""
    user = _logged_in_user()
    if user is not None:
        return user
    identity = st.session_state.get(_STATE)
    if identity is None:
        token = st.query_params.get(PARAM)
        if not isinstance(token, str) or not _TOKEN.match(token):
            token = secrets.token_urlsafe(12)
        owner = owner_of_token(token)
        identity = Identity(owner, f"session {owner[-4:]}", False, token)
        st.session_state[_STATE] = identity
    return identity


def remember() -> None:
    """Keep the session key in the address (so a reload keeps the same owner). Where login is configured,
    also draw the sidebar's Log in / Log out now, before the page runs: a page that ends its run early
    (``st.stop()``: the Runs page of an empty run store, Compare and Gradients on some links) would
    otherwise never reach ``login_controls()`` at the end of the script, and its sidebar would have neither."""
    identity = current()
    if identity.token is not None and st.query_params.get(PARAM) != identity.token:
        st.query_params[PARAM] = identity.token
    if auth_configured():
        st.session_state[_DRAWN] = True
        _draw_controls()


def describe(owner: str | None, owner_name: str | None) -> str:
    """How a run's owner reads on a page: "you", a user's name, a session's short name, or the command line's
    user."""
    if owner == current().owner:
        return "you"
    if owner is None:
        return "nobody"
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
    helptext = "Your runs then follow you from browser to browser."
    names = providers()
    for name in names:  # a button a provider: plain "Log in" for the flat [auth] keys' (or the only provider's)
        plain = name == "default" or len(names) == 1
        if st.sidebar.button("Log in" if plain else f"Log in with {name}", key="login" if plain else f"login_{name}",
                             help=helptext):
            _log_in(name)
