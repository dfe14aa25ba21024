"""facemood: find the faces in a photo and read the emotion of each, all on this computer.

Run with ``streamlit run app.py``. Every page lives in ``pages/``; add a page by
adding one line to ``PAGES`` in ``pages/_common.py`` (in the order they are listed),
which a page also needs when it is opened before app.py ever ran (see
``_common.through_app``). The image and model work is all done by the ``emotion``
library; the pages only show what it returns.
"""

import streamlit as st

from pages import _common

st.set_page_config(page_title="facemood", page_icon="🙂", layout="wide")

st.session_state[_common.ROUTED_KEY] = True
st.navigation(_common.app_pages()).run()
