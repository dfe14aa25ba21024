"""streamlit-webrtc, imported so that it cannot crash a process that already runs TensorFlow.

aiortc's SRTP binding (``pylibsrtp``) carries its own OpenSSL and exports its
symbols; TensorFlow's framework library, loaded globally, exports BoringSSL
functions of the same names. Imported after TensorFlow, ``pylibsrtp`` binds to
those and the whole process dies with a segmentation fault in ``srtp_init``.
Loading it with ``RTLD_DEEPBIND`` makes it use its own symbols first, whatever
was loaded before. Import streamlit-webrtc through :func:`webrtc` only.

:func:`ice_servers` gives the STUN/TURN servers every page with live video uses.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import streamlit as st

_LOCK = threading.Lock()
ICE_ENV = "FACEMOOD_ICE_SERVERS"


def webrtc():
    """The ``streamlit_webrtc`` module, with its native SRTP library loaded safely."""
    with _LOCK:
        if "pylibsrtp" not in sys.modules and hasattr(os, "RTLD_DEEPBIND"):
            flags = sys.getdlopenflags()
            sys.setdlopenflags(flags | os.RTLD_DEEPBIND)
            try:
                import pylibsrtp  # noqa: F401
            finally:
                sys.setdlopenflags(flags)
        import streamlit_webrtc

    return streamlit_webrtc


def ice_servers(secrets=None, environ=None) -> tuple[list[dict], str | None]:
    """The ICE (STUN/TURN) servers to use, and a problem to show, if any.

    ``st.secrets["ice_servers"]`` first, then ``$FACEMOOD_ICE_SERVERS`` (JSON); a list of
    ``{"urls": ..., "username": ..., "credential": ...}``. None by default: on localhost
    WebRTC needs no server, and nothing outside is contacted.
    """
    environ = os.environ if environ is None else environ
    source, value = None, None
    try:
        secrets = st.secrets if secrets is None else secrets
        if "ice_servers" in secrets:
            source, value = "the ice_servers secret", secrets["ice_servers"]
    except Exception:  # noqa: BLE001 - no or unreadable secrets file: not configured there
        pass
    if source is None and environ.get(ICE_ENV, "").strip():
        source = f"${ICE_ENV}"
        try:
            value = json.loads(environ[ICE_ENV])
        except ValueError as error:
            return [], f"{source} is not valid JSON ({error}); no ICE servers are used."
    if source is None:
        return [], None
    if isinstance(value, dict) and "urls" in value:
        value = [value]
    try:
        servers = [{key: (list(v) if key == "urls" and not isinstance(v, str) else v)
                    for key, v in dict(server).items() if key in ("urls", "username", "credential")}
                   for server in value]
    except (TypeError, ValueError):
        servers = []
    if not servers or not all(server.get("urls") for server in servers):
        return [], (f"{source} should be a list of {{\"urls\": ..., \"username\": ..., \"credential\": ...}}; "
                    "no ICE servers are used.")
    return servers, None
