"""All agencies side by side (analysts only, not anonymised)."""

import streamlit as st

from dashboards import data_access
from dashboards.figures import funnel_plot
from dashboards.session import csv_download, page_viewer, snapshot_or_stop

PAGE = "all_agencies"
viewer = page_viewer(PAGE, "analyst")
st.title("All agencies")
snapshot_or_stop()
agencies = data_access.agencies_overview(viewer)
st.dataframe(agencies, hide_index=True, width="stretch")
csv_download(viewer, PAGE, agencies, "agencies")
peers = agencies.rename({"agency_id": "peer"})
st.plotly_chart(funnel_plot(agencies.clear(), peers, "–"), width="stretch", key="funnel_all")
st.caption("Observed / expected unplanned admissions after enrolment (indirect standardisation, not causal).")
