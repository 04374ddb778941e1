"""CNN architecture lab: `streamlit run dashboard.py`.

The network being edited lives in session state (ui/draft.py) and in the URL (ui/settings.py); each page in
pages/ lays out what `archs` computes for it, and declares the settings the URL keeps for it next to their
widgets. To add a page, add one line to PAGES.
"""

import contextlib

import streamlit as st

from ui import identity, settings

st.set_page_config(page_title="CNN architecture lab", page_icon=":material/neurology:", layout="wide")

PAGES = [
    st.Page("pages/build.py", title="Build", icon=":material/construction:", default=True),
    st.Page("pages/gradients.py", title="Gradients", icon=":material/show_chart:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
    st.Page("pages/studies.py", title="Studies", icon=":material/science:"),
]

settings.init()
identity.remember()     # this browser's key (in its cookie, never the address; a link's key is dropped), or the user
page = st.navigation(PAGES)
settings.show_notice()
settings.write_url()    # now, so a slow page keeps the address; and again after Build has changed the network
with contextlib.suppress(settings.PageEnded):   # a page that ended early: the address and sidebar still follow
    page.run()
settings.write_url()
settings.sidebar_note()
identity.login_controls()
