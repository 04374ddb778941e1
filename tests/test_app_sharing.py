"""Sharing a network: links (query parameters), JSON download and upload, and hostile input."""

import base64
import json
import zlib
from dataclasses import replace

import pytest

import archs
from archs import PRESETS
from app_helpers import metric, open_app, run, stage_key, texts, network_query
from ui import state


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
    assert at.session_state["spec"] == PRESETS[state.DEFAULT_PRESET]
    warning = texts(at.warning)
    assert says in warning and state.DEFAULT_PRESET in warning
    if "evil" in query.get("preset", ""):                                # shown as text, not as a link or HTML
        assert r"\[click\]" in texts(at.warning, raw=True) and r"\<script\>" in texts(at.warning, raw=True)
    assert metric(at, "Parameters") == f"{PRESETS[state.DEFAULT_PRESET].num_params():,}"
    assert network_query(at) == {"preset": state.DEFAULT_PRESET}
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
    assert network_query(at) == {"preset": state.DEFAULT_PRESET}


def test_the_session_key_stays_in_the_url_and_the_share_link_leaves_it_out():
    from ui.identity import owner_of_token

    at = open_app(preset="resnet18")
    key = at.query_params["session"]
    key = key[0] if isinstance(key, list) else key
    assert len(key) >= 16
    run(at.switch_page("pages/compare.py"))
    assert at.query_params["session"] in (key, [key])  # kept across pages and reruns
    again = open_app(preset="resnet18", session=key)  # a reload of that tab: the same owner
    assert again.session_state["_identity"].owner == owner_of_token(key) == at.session_state["_identity"].owner
    other = open_app(preset="resnet18", session="not a key!")  # garbage: a new key, never an error
    assert other.session_state["_identity"].token != "not a key!"
    note = texts(at.sidebar.caption, raw=True)
    assert "[Link to share it](" in note and "preset=resnet18" in note and key not in note
