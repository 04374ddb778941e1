"""Sharing a network: links (query parameters), JSON download and upload, and hostile input."""

import base64
import json
import zlib
from dataclasses import replace

import pytest
from app_helpers import metric, network_query, open_app, run, stage_key, texts

import archs
from archs import PRESETS
from ui import draft


def encode(data: object) -> str:
    raw = json.dumps(data).encode() if not isinstance(data, bytes) else data
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def test_preset_link_opens_that_preset():
    at = open_app(preset="resnet50")
    assert metric(at, "Parameters") == "25,557,032"
    assert at.session_state["spec"] == PRESETS["resnet50"]
    assert not at.warning


def test_the_url_the_app_writes_rebuilds_the_same_network_in_a_new_session():
    at = open_app(preset="seed004-resnet")
    run(at.slider(key=stage_key(at, 1, "blocks")).set_value(5))
    edited = at.session_state["spec"]
    assert edited != PRESETS["seed004-resnet"]
    link = network_query(at)
    assert set(link) == {"spec"}

    other = open_app(**link)
    assert other.session_state["spec"] == edited
    assert metric(other, "Parameters") == metric(at, "Parameters") == f"{edited.num_params():,}"
    assert not other.warning


def test_pages_other_than_build_open_from_a_link_too():
    at = open_app(spec=archs.encode_spec(replace(PRESETS["cifar-resnet20"], name="shared")))
    run(at.switch_page("pages/compare.py"))
    assert at.session_state["spec"].name == "shared"
    assert at.query_params["spec"] == archs.encode_spec(at.session_state["spec"])


too_big = PRESETS["cifar-resnet20"].to_dict()
too_big["stages"][0]["channels"] = 10**9
over_limit = PRESETS["cifar-resnet20"].to_dict()
over_limit["stages"][2].update(channels=2048, blocks=200)


@pytest.mark.parametrize("query, says", [
    ({"spec": "garbage!!"}, "could not be read"),
    ({"spec": "x" * 20_000}, "too long"),
    ({"spec": encode(b"[" * 50_000 + b"]" * 50_000)}, "could not be read"),        # nesting bomb
    ({"spec": encode(too_big)}, "must be <= 2048"),                                 # a huge value
    ({"spec": encode(over_limit)}, "over the limit"),                               # a huge network
    ({"spec": encode({"format": "archs.netspec/1", "stem": [], "stages": [{"type": "nope"}], "head": {}})},
     "unknown stage type"),
    ({"preset": "resnet5000"}, "no preset called"),
    ({"preset": "[click](http://evil.example) <script>"}, "no preset called"),
])
def test_a_broken_or_hostile_link_opens_the_default_network_with_a_warning(query, says):
    at = open_app(**query)
    assert at.session_state["spec"] == PRESETS[draft.DEFAULT_NETWORK]
    warning = texts(at.warning)
    assert says in warning and draft.DEFAULT_NETWORK in warning
    if "evil" in query.get("preset", ""):                                # shown as text, not as a link or HTML
        assert r"\[click\]" in texts(at.warning, raw=True) and r"\<script\>" in texts(at.warning, raw=True)
    assert metric(at, "Parameters") == f"{PRESETS[draft.DEFAULT_NETWORK].num_params():,}"
    assert network_query(at) == {"preset": draft.DEFAULT_NETWORK}
    # the warning goes once the user picks a network
    run(at.selectbox(key="start_from").select("seed004-resnet"))
    assert not at.warning


def test_download_offers_the_spec_as_json():
    at = open_app(preset="googlenet")
    button = at.get("download_button")[0]
    assert "JSON" in button.label


def test_uploading_a_spec_loads_it():
    at = open_app()
    text = replace(PRESETS["resnet34"], name="uploaded").to_json()
    run(at.file_uploader(key="upload").upload("net.json", text.encode(), "application/json"))
    assert at.session_state["spec"].name == "uploaded"
    assert metric(at, "Parameters") == f"{PRESETS['resnet34'].num_params():,}"
    assert "spec" in at.query_params


@pytest.mark.parametrize("content, says", [
    (b"{not json", "not valid JSON"),
    (json.dumps({"format": "archs.netspec/1", "stem": [], "stages": [], "head": {}}).encode(), "missing field"),
    (PRESETS["resnet18"].to_json().replace('"channels": 512', '"channels": -5').encode(), "must be >= 1"),
    (b"\xff\xfe garbage", "spec"),
])
def test_a_bad_file_shows_its_error_and_changes_nothing(content, says):
    at = open_app()
    before = at.session_state["spec"]
    run(at.file_uploader(key="upload").upload("bad.json", content, "application/json"))
    assert says in texts(at.error)
    assert at.session_state["spec"] == before
    assert network_query(at) == {"preset": draft.DEFAULT_NETWORK}


def test_the_session_key_stays_out_of_the_url_and_the_share_link():
    from ui.identity import owner_of_token

    at = open_app(preset="resnet18")
    me = at.session_state["_identity"]
    key = me.token
    assert len(key) >= 16 and "session" not in at.query_params   # kept in the browser's cookie, not the address
    run(at.switch_page("pages/compare.py"))
    assert at.session_state["_identity"] == me and "session" not in at.query_params  # kept across pages, reruns
    again = open_app(preset="resnet18", session=key)  # a reload of that browser (its cookie): the same owner
    assert again.session_state["_identity"].owner == owner_of_token(key) == me.owner
    note = texts(at.sidebar.caption, raw=True)
    assert "[Link to share it](" in note and "preset=resnet18" in note and key not in note


# ----------------------------------------------------------------------------- page settings in the link
def test_gradients_settings_go_into_the_link_and_come_back():
    at = open_app(preset="seed004-resnet")
    at.session_state["grad_batch"] = 4
    run(at.switch_page("pages/gradients.py"))
    run(at.number_input(key="grad_seed").set_value(3))
    run(at.toggle(key="grad_norm").set_value(False))
    run(at.select_slider(key="grad_size").set_value(16))
    run(at.select_slider(key="sweep_range").set_range(8, 14))
    link = network_query(at)
    assert link == {"preset": "seed004-resnet", "gbatch": "4", "gseed": "3", "gnorm": "0", "gsize": "16",
                    "sweep": "8-14"}
    # the link opens on another page: the settings wait in the session until the Gradients page draws them
    other = open_app(**link)
    assert network_query(other) == link                  # and stay in the address bar meanwhile
    run(other.switch_page("pages/gradients.py"))
    assert (other.select_slider(key="grad_batch").value, other.number_input(key="grad_seed").value,
            other.toggle(key="grad_norm").value, other.select_slider(key="grad_size").value,
            other.select_slider(key="sweep_range").value) == (4, 3, False, 16, (8, 14))
    assert "without normalisation, batch 4, seed 3, input 16×16" in texts(other.caption)
    # back to a default: out of the link
    run(other.number_input(key="grad_seed").set_value(0))
    assert "gseed" not in other.query_params


def test_a_linked_input_size_the_slider_does_not_offer_is_ignored_with_a_warning_that_names_it():
    at = open_app(preset="seed004-resnet", gsize="1024", gseed="5")
    run(at.switch_page("pages/gradients.py"))
    assert PRESETS["seed004-resnet"].input_size == 32
    assert "Ignored from the link: gsize=1024 (expected one of 16, 32, 64, 96, 128, 224)." in texts(at.warning)
    assert at.select_slider(key="grad_size").value == 32                       # the network's own size
    assert at.number_input(key="grad_seed").value == 5                         # the rest of the link holds
    assert "gsize" not in at.query_params and at.query_params["gseed"] == "5"


def test_the_twin_switch_the_tab_and_the_batch_are_in_the_link():
    at = open_app(preset="resnet18")
    run(at.toggle(key="no_skips").set_value(True))
    run(at.number_input(key="mem_batch").set_value(8))
    at.session_state["build_tab"] = "Receptive field"
    run(at)
    link = network_query(at)
    assert link == {"preset": "resnet18", "twin": "1", "batch": "8", "tab": "Receptive field"}
    other = open_app(**link)
    assert other.toggle(key="no_skips").value and metric(other, "Activations, batch 8")
    assert metric(other, "Parameters") == f"{archs.plain_twin(PRESETS['resnet18']).num_params():,}"
    assert other.session_state["build_tab"] == "Receptive field" and other.get("plotly_chart")[0].key == "rf_chart"


@pytest.mark.parametrize("param, value, says", [
    ("gbatch", "7", "gbatch=7 (expected one of 2, 4, 8, 16, 32, 64)"),
    ("gseed", "-1", "gseed=-1 (expected 0 to 2147483647)"),
    ("gnorm", "maybe", "gnorm=maybe (expected 1 or 0)"),
    ("sweep", "44-8", "sweep=44-8 (expected two depths"),
    ("twin", "[x](http://evil.example)", r"twin=\[x\](http://evil.example)"),
    ("tab", "Secrets", "tab=Secrets (expected one of Per stage"),
    ("batch", "1" * 5000, "batch=" + "1" * 40),
])
def test_a_bad_setting_in_a_link_is_ignored_with_a_notice(param, value, says):
    at = open_app(preset="cifar-resnet20", **{param: value})
    assert at.session_state["spec"] == PRESETS["cifar-resnet20"]     # the network itself is still taken
    if param in ("twin", "tab", "batch"):                            # Build's own: checked as Build declares it
        assert says in texts(at.warning, raw=param == "twin") and param not in at.query_params
    run(at.switch_page("pages/gradients.py"))                        # Gradients' own: checked there
    assert says in texts(at.warning, raw=param == "twin")            # and Build's notice is still shown
    assert param not in at.query_params                              # the default is shown, and kept out
    assert "with BatchNorm, batch 16, seed 0, input 32×32" in texts(at.caption)      # the page's defaults


# ------------------------------------------------------------------------ a page that ends early
@pytest.mark.parametrize("page, query, says", [
    ("pages/runs.py", {"preset": "seed004-resnet"}, "No runs in"),                         # an empty run store
    ("pages/gradients.py", {"preset": "resnet50", "gbatch": "64"}, "Measure anyway"),       # it asks first
    ("pages/compare.py", {"preset": "seed004-resnet", "b": "run:0123456789ab"}, "Network B cannot be shown"),
])
def test_a_page_that_ends_early_keeps_the_sidebar_note_and_the_address(page, query, says, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHS_RUNS_DIR", str(tmp_path / "runs"))
    at = open_app(**query)
    run(at.switch_page(page))
    assert says in texts([*at.info, *at.error, *at.markdown]) + " ".join(b.label for b in at.button)
    note = texts(at.sidebar.caption, raw=True)
    assert f"Current network: **{PRESETS[query['preset']].name}**" in note and "[Link to share it](" in note
    assert network_query(at) == query    # what the page declared is in the address after its early end too
