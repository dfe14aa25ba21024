"""Who may do what on this server: the deployment's :class:`emotion.access.AccessPolicy`,
read from the ``[access]`` table of Streamlit's secrets and the environment on every run,
the password box of the Training page, and the check of every server path a visitor types.

A session that typed the right password stays unlocked until its browser tab closes (the
unlock lives in ``st.session_state``) or the password changes.
"""

from __future__ import annotations

import logging
import os

import streamlit as st

from emotion.access import AccessPolicy, PathRefused

log = logging.getLogger(__name__)
TOKEN_KEY = "access_unlocked"
PASSWORD_KEY = "access_password"
_reported: set[str] = set()  # settings problems already logged by this server


def policy() -> AccessPolicy:
    settings = None
    try:
        if "access" in st.secrets:
            settings = st.secrets["access"]
    except Exception:  # noqa: BLE001 - no or unreadable secrets file: not configured there
        settings = None
    result = AccessPolicy.from_settings(settings if hasattr(settings, "keys") else None, os.environ)
    if result.problem and result.problem not in _reported:
        _reported.add(result.problem)
        log.warning("facemood access settings: %s", result.problem)
    return result


def may_train(current: AccessPolicy | None = None) -> bool:
    """Whether this browser session may train and change the models (shows nothing)."""
    return (current or policy()).may_train(st.session_state.get(TOKEN_KEY))


def allowed_path(text: str, what: str) -> str:
    """The real path of a file a visitor typed, when it lies in an allowed data folder;
    otherwise "" after a one-line warning that tells nothing about the path."""
    try:
        return str(policy().data_path(text))
    except PathRefused as error:
        st.warning(f"{what} not used: {error}", icon=":material/warning:")
        return ""


def _unlock(current: AccessPolicy) -> None:
    # A callback, so the typed password can be cleared from the session before the rerun.
    attempt = st.session_state.get(PASSWORD_KEY, "")
    st.session_state[PASSWORD_KEY] = ""
    if current.check_password(attempt):
        st.session_state[TOKEN_KEY] = current.unlock_token()
        st.session_state.pop("access_wrong", None)
    else:
        st.session_state["access_wrong"] = True


def training_gate() -> bool:
    """True when this session may train; otherwise it shows why in one line (training off)
    or a password box (training behind a password), and returns False."""
    current = policy()
    if may_train(current):
        return True
    if current.training != "password":
        st.info("Training is turned off on this server.", icon=":material/block:")
        return False
    with st.form("unlock", border=False):
        st.text_input("Training on this server needs a password", type="password", key=PASSWORD_KEY)
        st.form_submit_button("Unlock training", icon=":material/lock_open:", on_click=_unlock, args=(current,))
    if st.session_state.pop("access_wrong", False):
        st.error("Wrong password.", icon=":material/error:")
    return False
