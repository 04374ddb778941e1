"""Every registered stage type on the Build page (AppTest): chosen for a stage, it gets a control per field from
the generic form, and the page shows the network's exact parameter count. No line here names a type."""

import pytest
from app_helpers import metric, open_app, run

from archs import STAGE_TYPES
from archs.fields import spec_fields


@pytest.mark.parametrize("name", sorted(STAGE_TYPES))
def test_a_stage_of_each_type_gets_its_sliders(name):
    at = open_app()
    part = at.session_state["draft"].stages[-1]
    run(at.selectbox(key=part.type_key).select(name))
    spec = at.session_state["spec"]
    assert spec.stages[-1].type_name == name
    part = at.session_state["draft"].stages[-1]
    keys = {w.key for kind in ("slider", "number_input", "checkbox", "selectbox") for w in getattr(at, kind)}
    assert {part.key(info.name) for info in spec_fields(STAGE_TYPES[name])} <= keys
    assert metric(at, "Parameters") == f"{spec.num_params():,}"
    assert not at.exception
