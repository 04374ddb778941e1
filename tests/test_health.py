"""Activation health: block statistics and dead ReLU units, on weights set by hand."""

from dataclasses import replace

import pytest
import torch

from archs import PRESETS, NetSpec, PlainSpec, build_model, gradient_profile
from archs.health import activation_health, activation_stats, random_batch
from archs.training.stored import RunRecorder, save_weights, spec_of

# stem: a 1x1 conv from 1 to 2 channels (no norm, with bias) and ReLU; one more such stage of 3 channels
TWO_CONVS = NetSpec(in_channels=1, num_classes=3, input_size=8, norm="none", stem=(
    PlainSpec(channels=2, kernel_size=1, padding=0, conv_bias=True),),
    stages=(PlainSpec(channels=3, kernel_size=1, padding=0, conv_bias=True),))


def hand_set_model():
    model = build_model(TWO_CONVS)
    with torch.no_grad():
        stem = model.stem[0].layer1.conv
        stem.weight[:, 0, 0, 0] = torch.tensor([1.0, -1.0])     # channel 1 sees -x: dead on positive images
        stem.bias.zero_()
        conv = model.stage1.layer1.conv
        conv.weight.zero_()
        conv.weight[0, 0] = 2.0                                   # 2 * relu(x) = 2x
        conv.bias.copy_(torch.tensor([0.0, -5.0, 1.0]))           # channel 1 always -5: dead; channel 2 always 1
    return model


def test_dead_units_and_block_statistics_by_hand():
    x = torch.rand(8, 1, 8, 8) + 0.1                              # every pixel positive
    health = activation_stats(hand_set_model(), x, train_mode=False)
    stem, stage = health.blocks
    assert (stem.name, stem.index, stem.relu_units, stem.dead_units) == ("stem.0", 1, 2, 1)
    assert stem.zero_fraction == 0.5 and stem.dead_fraction == 0.5
    expected = torch.cat([x, torch.zeros_like(x)], dim=1)
    assert stem.mean == pytest.approx(float(expected.mean()), rel=1e-6)
    assert stem.std == pytest.approx(float(expected.std()), rel=1e-6)
    assert (stage.name, stage.stage, stage.relu_units, stage.dead_units) == ("stage1.layer1", "stage1", 3, 1)
    assert stage.zero_fraction == pytest.approx(1 / 3)
    out = torch.cat([2 * x, torch.zeros_like(x), torch.ones_like(x)], dim=1)
    assert stage.mean == pytest.approx(float(out.mean()), rel=1e-6)
    assert health.dead_fraction == 2 / 5 and health.batch_size == 8 and not health.train_mode


def test_a_unit_alive_for_one_image_is_not_dead():
    x = torch.rand(4, 1, 8, 8) + 0.1
    x[2, 0, 1, 1] = -1.0                    # one negative pixel in one image wakes the -x channel there
    stem = activation_stats(hand_set_model(), x).blocks[0]
    assert stem.dead_units == 0 and stem.zero_fraction == pytest.approx((4 * 64 - 1 + 1) / (2 * 4 * 64))


def test_the_model_is_left_as_found():
    model = build_model(PRESETS["seed004-resnet"]).eval()
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    health = activation_stats(model, torch.randn(4, 1, 32, 32), train_mode=True)
    assert health.train_mode and not model.training
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())


def test_blocks_are_those_of_the_gradient_views():
    spec = PRESETS["cifar-resnet20"]
    health = activation_health(spec, 8, 0)
    assert [b.name for b in health.blocks] == [b.name for b in gradient_profile(spec, 8, 0).blocks]
    # a basic block has two ReLUs (after conv1, after the add), of 16 channels in stage 1
    assert health.blocks[1].name == "stage1.block1" and health.blocks[1].relu_units == 32
    assert activation_health(spec, 8, 0) is health                  # cached
    assert all(0 <= b.dead_units <= b.relu_units for b in health.blocks)


def test_no_relu_no_dead_units():
    health = activation_health(replace(PRESETS["cifar-resnet20"], activation="gelu"), 4, 0)
    assert all(b.relu_units == 0 and b.dead_fraction is None and b.zero_fraction is None for b in health.blocks)
    assert health.dead_fraction is None


def test_a_large_negative_bias_kills_every_unit():
    model = hand_set_model()
    with torch.no_grad():
        model.stem[0].layer1.conv.bias.fill_(-100.0)
    health = activation_stats(model, torch.rand(4, 1, 8, 8))
    assert health.blocks[0].dead_fraction == 1.0 and health.blocks[0].zero_fraction == 1.0
    assert health.to_dict()["blocks"][0]["dead_fraction"] == 1.0


def health_request(run, data):
    from archs.training import RunRequest, TrainConfig

    return RunRequest(spec_of(run), TrainConfig(batch_size=4, seed=0), data, kind="health", source_run=run.id,
                      owner="session:viewer")


def test_a_stored_run_is_measured_with_its_trained_weights_in_eval_mode(tmp_path):
    from run_fakes import trained_like

    from archs.health import ActivationHealth
    from archs.training import DataConfig, RunRequest, RunStore, execute_request
    from archs.training.request import MemoryRecorder

    spec = PRESETS["seed004-resnet"]
    weights = trained_like(spec, seed=2)
    store = RunStore(tmp_path)
    run = store.create(RunRequest(spec, owner="session:trainer"))
    save_weights(run, weights)
    unreadable = DataConfig(name="mnist", root=str(tmp_path / "nothing"))  # its data is gone: random images
    status = execute_request(health_request(run, unreadable), MemoryRecorder(), store=store)
    assert status["status"] == "completed"
    health = ActivationHealth.from_dict(status["result"]["trained"])
    model = build_model(spec)
    model.load_state_dict(weights)
    expected = activation_stats(model.eval(), random_batch(spec, 4, 0))
    assert health.inputs == "random normal images"
    assert replace(health, inputs=expected.inputs) == expected and not health.train_mode
    assert health != activation_health(spec, 4, 0)                    # not the network at initialisation
    fresh = ActivationHealth.from_dict(status["result"]["initial"])
    torch.manual_seed(0)
    assert replace(fresh, inputs=expected.inputs) == activation_stats(build_model(spec).eval(), random_batch(spec, 4, 0))
    assert ActivationHealth.from_dict(health.to_dict()) == health
    bare = store.create(RunRequest(spec, owner="session:trainer"))
    status = execute_request(health_request(bare, unreadable), MemoryRecorder(), store=store)
    assert status["status"] == "failed" and "has no saved weights" in status["error"]


def test_a_real_stored_run_is_measured_on_its_own_test_images(tmp_path, monkeypatch):
    from archs.health import ActivationHealth
    from archs.training import DataConfig, RunRequest, RunStore, TrainConfig, execute_request
    from archs.training.request import MemoryRecorder

    spec = PRESETS["seed002-inception"]
    store = RunStore(tmp_path)
    data = DataConfig(name="digits", test_limit=40)
    run = store.create(RunRequest(spec, TrainConfig(max_steps=3, batch_size=16, grad_every=0), data,
                                  owner="session:trainer"))
    assert execute_request(RunRequest.from_run(run), RunRecorder(run))["status"] == "completed"
    request = RunRequest(spec, TrainConfig(batch_size=8, seed=0), data, kind="health", source_run=run.id,
                         owner="session:viewer")
    status = execute_request(request, MemoryRecorder(), store=store)
    health = ActivationHealth.from_dict(status["result"]["trained"])
    assert health.inputs == "8 test images of digits" and not health.train_mode
    assert len(health.blocks) > 3 and all(b.std > 0 for b in health.blocks)
