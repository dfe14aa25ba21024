"""streamlit-webrtc, imported so that it cannot crash a process that already runs TensorFlow.

aiortc's SRTP binding (``pylibsrtp``) carries its own OpenSSL and exports its
symbols; TensorFlow's framework library, loaded globally, exports BoringSSL
functions of the same names. Imported after TensorFlow, ``pylibsrtp`` binds to
those and the whole process dies with a segmentation fault in ``srtp_init``.
Loading it with ``RTLD_DEEPBIND`` makes it use its own symbols first, whatever
was loaded before. Import streamlit-webrtc through :func:`webrtc` only.
"""

from __future__ import annotations

import os
import sys
import threading

_LOCK = threading.Lock()


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
