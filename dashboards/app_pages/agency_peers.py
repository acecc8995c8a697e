"""An agency's unplanned admissions against its anonymous peers: funnel plot and quartile (not causal)."""

import streamlit as st

from dashboards import data_access
from dashboards.figures import funnel_plot
from dashboards.session import agency_in_view, page_viewer, snapshot_or_stop

PAGE = "agency_peers"
viewer = page_viewer(PAGE, "agency", "analyst")
snapshot_or_stop()
agency = agency_in_view(viewer)
st.title(f"Outcomes against peers · {agency}")
comparison = data_access.agency_peers(viewer, agency)
own = comparison.own
if own.height and own["observed_over_expected"][0] is not None:
    row = own.row(0, named=True)
    cols = st.columns(3)
    cols[0].metric(
        "Observed / expected",
        f"{row['observed_over_expected']:.2f}",
        delta=f"95% CI {row['ratio_ci_low']:.2f} to {row['ratio_ci_high']:.2f}",
        delta_color="off",
        delta_arrow="off",
    )
    cols[1].metric("Unplanned admissions observed", f"{row['observed']:,}")
    cols[2].metric(
        "Quartile among agencies",
        "–" if comparison.quartile is None else f"Q{comparison.quartile}",
        help="Q1: the lowest observed/expected ratios (fewest admissions for the case mix).",
    )
if comparison.problem:
    st.warning(f"Peers are not shown: {comparison.problem}.")
st.plotly_chart(funnel_plot(own, comparison.peers, agency or "This agency"), width="stretch", key="funnel")
st.info(
    "Indirect standardisation: each agency's admissions after enrolment against what the federation's rates "
    "for its age and GIR mix would give. It benchmarks; it does not say what care management caused. Points "
    "outside the 99.8% limits are unlikely to be chance. Peers are anonymous and shown only when there are at "
    "least 3 of them and none makes up more than 85% of the group."
)
