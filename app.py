"""facemood: find the faces in a photo and read the emotion of each, all on this computer.

Run with ``streamlit run app.py``. Every page lives in ``pages/``; add a page by
adding one line to ``PAGES`` below. The image and model work is all done by the
``emotion`` library; the pages only show what it returns.
"""

import streamlit as st

st.set_page_config(page_title="facemood", page_icon="🙂", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/image.py", title="Image", icon=":material/image:"),
    # More pages (Webcam, Training) go here, in the order they should be listed.
]

st.navigation(PAGES).run()
