"""Unlearning Lab: the router. Run with ``streamlit run dashboard/app.py``.

The database is ``$LAB_DB`` (default ``data/lab.duckdb``); ``-- --db PATH`` after the
streamlit arguments overrides it.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import warmup  # noqa: E402

# the favicon is a local file: with a :material/…: page icon the browser would fetch it from a
# web-font server. Icons in the app itself come from the font Streamlit ships (no request).
st.set_page_config(
    page_title="Unlearning Lab",
    page_icon=str(Path(__file__).parent / "assets" / "icon.png"),
    layout="wide",
)

# A fresh server's first run imports the engine (torch, several seconds) before any page can
# draw: say so at once instead of leaving the page blank; the page replaces it when drawn.
loading = st.empty()
if not warmup.started():
    loading.info(warmup.LOADING)
warmup.start()  # the digits load in the background while the first page renders

PAGES = Path(__file__).parent / "views"  # not pages/, which Streamlit would list by itself
nav = st.navigation(
    [
        st.Page(PAGES / "home.py", title="Home", icon=":material/home:", default=True),
        st.Page(PAGES / "models.py", title="Models", icon=":material/hub:", url_path="models"),
        st.Page(
            PAGES / "forget_sets.py",
            title="Forget sets",
            icon=":material/delete_sweep:",
            url_path="forget-sets",
        ),
        st.Page(
            PAGES / "klom.py", title="KLoM explorer", icon=":material/query_stats:", url_path="klom"
        ),
        st.Page(
            PAGES / "unlearn.py",
            title="Unlearn",
            icon=":material/auto_fix_high:",
            url_path="unlearn",
        ),
        st.Page(
            PAGES / "compare.py",
            title="Compare",
            icon=":material/leaderboard:",
            url_path="compare",
        ),
        st.Page(
            PAGES / "attribution.py",
            title="Attribution",
            icon=":material/scatter_plot:",
            url_path="attribution",
        ),
        st.Page(
            PAGES / "linear.py",
            title="Linear model",
            icon=":material/show_chart:",
            url_path="linear",
        ),
    ]
)
try:
    nav.run()
finally:  # also when the page stops early (st.stop) or reruns
    loading.empty()
