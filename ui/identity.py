"""Who is using the dashboard: the owner recorded with each run they start.

Only a run's owner may stop or delete it; everyone sees every run.

- Where ``st.login`` is configured (an ``[auth]`` section in ``.streamlit/secrets.toml``, OIDC), the
  owner is the logged-in user (``user:<email>``), the same in every browser they log in from.
- Otherwise the owner is the browser session: a random key, kept in the address as ``?session=…`` so a
  reload (a new Streamlit session) keeps it. The run store keeps only a hash of the key, so reading the
  runs folder or the Runs page does not reveal it. It protects a user's runs from the other users'
  clicks; it does not protect them from someone who has their full address (the key is in it), and a
  user who drops it from the address becomes someone new. The sidebar's share link leaves it out.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import streamlit as st

PARAM = "session"
_STATE = "_identity"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True)
class Identity:
    owner: str          # what the run store records
    name: str           # what pages show
    logged_in: bool
    token: str | None   # the session key (None for a logged-in user)


def auth_configured() -> bool:
    """True where ``.streamlit/secrets.toml`` has an ``[auth]`` section (``st.login`` can be used)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file, or one that does not parse: no login
        return False


def owner_of_token(token: str) -> str:
    return "session:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def current() -> Identity:
    """The identity of this session (decided on its first run, then kept in session state)."""
    if auth_configured() and getattr(st.user, "is_logged_in", False):
        email = st.user.get("email") or st.user.get("sub") or "user"
        return Identity(f"user:{email}", st.user.get("name") or email, True, None)
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
    """Keep the session key in the address (so a reload keeps the same owner)."""
    identity = current()
    if identity.token is not None and st.query_params.get(PARAM) != identity.token:
        st.query_params[PARAM] = identity.token


def describe(owner: str | None, owner_name: str | None) -> str:
    """How a run's owner reads on a page: "you", a user's name, or a session's short name."""
    if owner is None:
        return "command line"
    if owner == current().owner:
        return "you"
    return owner_name or owner


def login_controls() -> None:
    """Log in / out buttons in the sidebar, where login is configured."""
    if not auth_configured():
        return
    if getattr(st.user, "is_logged_in", False):
        st.sidebar.caption(f"Logged in as **{st.user.get('name') or st.user.get('email')}**.")
        if st.sidebar.button("Log out", key="logout"):
            st.logout()
    elif st.sidebar.button("Log in", key="login", help="Your runs then follow you from browser to browser."):
        st.login()
