"""facemood: find the faces in a photo and read the emotion of each, all on this computer.

Run with ``streamlit run app.py``. Every page lives in ``pages/``; add a page by
adding one line to ``PAGES`` below (in the order they are listed). The image and model work is all done by the
``emotion`` library; the pages only show what it returns.
"""

import streamlit as st

st.set_page_config(page_title="facemood", page_icon="🙂", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/image.py", title="Image", icon=":material/image:"),
    st.Page("pages/webcam.py", title="Webcam", icon=":material/videocam:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
]

st.navigation(PAGES).run()
