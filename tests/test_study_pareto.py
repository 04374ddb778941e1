"""The Pareto front of a study's runs, checked by hand and against a brute-force dominance check; the
objectives registry; and what the studies package may import."""

import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from archs.studies.pareto import OBJECTIVES, RESULT_KEYS, Objective, dominates, pareto_front, train_flops

ROOT = Path(__file__).resolve().parents[1]


def brute_front(points, objectives):
    """O(n^2): a point is on the front unless another complete point dominates it."""
    def values(point):
        out = []
        for name, direction in objectives:
            v = point.get(name)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return None
            out.append(v if direction == "min" else -v)
        return out

    complete = [(i, values(p)) for i, p in enumerate(points)]
    complete = [(i, v) for i, v in complete if v is not None]
    front = []
    for i, a in complete:
        dominated = any(all(x <= y for x, y in zip(b, a)) and any(x < y for x, y in zip(b, a))
                        for j, b in complete if j != i)
        if not dominated:
            front.append(i)
    return front


def test_objectives_registry():
    assert list(OBJECTIVES) == ["accuracy", "params", "mult_adds", "train_flops", "train_seconds"]
    assert {name: o.direction for name, o in OBJECTIVES.items()} == {
        "accuracy": "max", "params": "min", "mult_adds": "min", "train_flops": "min", "train_seconds": "min"}
    direction, label, unit = OBJECTIVES["train_seconds"]
    assert (direction, label, unit) == ("min", "Training time", "s")
    assert isinstance(OBJECTIVES["accuracy"], Objective) and OBJECTIVES["accuracy"].label == "Test accuracy"
    assert RESULT_KEYS == {"accuracy": "test_accuracy"}


def test_train_flops_is_three_forward_passes_of_two_flops_per_mult_add():
    assert train_flops(1_000_000, 300 * 64) == 3 * 2 * 1_000_000 * 300 * 64 == 115_200_000_000
    assert train_flops(0, 100) == 0


def test_accuracy_against_parameters_by_hand():
    points = [
        {"id": "a", "test_accuracy": 0.90, "params": 100},
        {"id": "b", "test_accuracy": 0.92, "params": 300},
        {"id": "c", "test_accuracy": 0.89, "params": 200},   # dominated by a
        {"id": "d", "test_accuracy": 0.92, "params": 400},   # dominated by b (tie in accuracy)
        {"id": "e", "test_accuracy": 0.95, "params": 1000},
        {"id": "f", "test_accuracy": 0.90, "params": 100},   # a duplicate of a: on the front too
        {"id": "g", "test_accuracy": 0.80, "params": 50},
    ]
    assert pareto_front(points, ["accuracy", "params"]) == [0, 1, 4, 5, 6]
    assert pareto_front(points, ["accuracy", "params"], id_key="id") == ["a", "b", "e", "f", "g"]
    assert pareto_front(points, ["accuracy"]) == [4]
    assert pareto_front(points, ["params"]) == [6]
    # the same with explicit directions, as pairs and as a mapping, and with the objective's own key
    assert pareto_front(points, [("test_accuracy", "max"), ("params", "min")]) == [0, 1, 4, 5, 6]
    assert pareto_front(points, {"test_accuracy": "maximize", "params": "minimise"}) == [0, 1, 4, 5, 6]
    # reversing a direction changes the answer
    assert pareto_front(points, [("test_accuracy", "min"), ("params", "max")]) == [2, 3, 4, 6]


def test_missing_none_and_nan_are_left_out_and_do_not_dominate():
    points = [
        {"accuracy": 0.99, "params": 10, "train_seconds": None},   # would dominate everything
        {"accuracy": float("nan"), "params": 10, "train_seconds": 1.0},
        {"accuracy": 0.99, "params": 10},                           # no train_seconds
        {"accuracy": 0.90, "params": 100, "train_seconds": 5.0},
        {"accuracy": 0.85, "params": 100, "train_seconds": 4.0},
        {"accuracy": 0.80, "params": 200, "train_seconds": 9.0},   # dominated by both above
    ]
    assert pareto_front(points, ["accuracy", "params", "train_seconds"]) == [3, 4]
    assert pareto_front(points, ["accuracy", "params"]) == [0, 2]
    assert pareto_front([], ["accuracy"]) == []
    assert pareto_front([{"params": None}], ["params"]) == []


def test_the_result_key_is_read_when_the_name_is_absent():
    points = [{"test_accuracy": 0.8, "params": 1}, {"accuracy": 0.9, "test_accuracy": 0.1, "params": 1}]
    assert pareto_front(points, ["accuracy", "params"]) == [1]        # "accuracy" itself comes first


def test_infinities_compare_as_numbers():
    points = [{"train_seconds": math.inf, "accuracy": 1.0}, {"train_seconds": 5.0, "accuracy": 0.5},
              {"train_seconds": math.inf, "accuracy": 0.4}]
    assert pareto_front(points, ["train_seconds", "accuracy"]) == [0, 1]


@pytest.mark.parametrize("objectives, message", [
    (["loss"], "unknown objective 'loss'"),
    ([], "give at least one objective"),
    ([("loss", "down")], "loss: direction must be 'max' or 'min', got 'down'"),
    (["params", ("params", "max")], "objective 'params' is given twice"),
])
def test_bad_objectives(objectives, message):
    with pytest.raises(ValueError, match=message):
        pareto_front([{"params": 1}], objectives)


def test_a_value_that_is_not_a_number_is_a_bug():
    with pytest.raises(ValueError, match="params: must be a number, got str"):
        pareto_front([{"params": "12"}], ["params"])
    with pytest.raises(ValueError, match="params: must be a number, got bool"):
        pareto_front([{"params": True}], ["params"])


def test_a_single_name_is_one_objective():
    assert pareto_front([{"params": 3}, {"params": 2}, {"params": 2}], "params") == [1, 2]


def test_dominates():
    assert dominates((1, 2), (1, 3)) and dominates((0, 0), (1, 1))
    assert not dominates((1, 2), (1, 2)) and not dominates((1, 3), (2, 2)) and not dominates((2, 2), (1, 3))


@pytest.mark.parametrize("seed", range(40))
def test_against_brute_force_on_random_points(seed):
    rng = random.Random(seed)
    for _ in range(25):
        m = rng.randint(1, 4)
        names = rng.sample(["accuracy", "params", "mult_adds", "train_flops", "train_seconds"], m)
        objectives = [(name, rng.choice(["max", "min"])) for name in names]
        n = rng.randint(0, 60)
        discrete = rng.random() < 0.6      # few distinct values: many ties and duplicates
        points = []
        for _ in range(n):
            point = {}
            for name in names:
                r = rng.random()
                if r < 0.04:
                    continue                   # missing
                if r < 0.07:
                    point[name] = None
                elif r < 0.10:
                    point[name] = float("nan")
                else:
                    point[name] = rng.randint(0, 4) if discrete else rng.uniform(-1, 1)
            points.append(point)
            if points and rng.random() < 0.1:
                points.append(dict(rng.choice(points)))   # an exact duplicate
        expected = brute_front(points, objectives)
        assert pareto_front(points, objectives) == expected, (points, objectives)
        # the front is independent of the input order (indices map back to the same points)
        order = list(range(len(points)))
        rng.shuffle(order)
        shuffled = [points[i] for i in order]
        assert sorted(order[i] for i in pareto_front(shuffled, objectives)) == expected


def test_every_front_point_is_undominated_and_every_other_complete_point_is_dominated():
    rng = random.Random(12345)
    points = [{"accuracy": rng.random(), "params": rng.randint(1, 50), "train_seconds": rng.random()}
              for _ in range(300)]
    front = set(pareto_front(points, ["accuracy", "params", "train_seconds"]))
    key = [(-p["accuracy"], p["params"], p["train_seconds"]) for p in points]
    for i in range(len(points)):
        dominated = any(dominates(key[j], key[i]) for j in range(len(points)))
        assert dominated == (i not in front)
    assert 1 < len(front) < 300


def _imports(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    return set(out.stdout.split())


def test_the_package_and_pareto_do_not_import_torch():
    modules = _imports("import archs.studies, archs.studies.pareto")
    assert "torch" not in modules and "archs.studies.pareto" in modules


def test_the_studies_import_no_streamlit_no_run_store_no_executors():
    modules = _imports("import archs.studies.space, archs.studies.families, archs.studies.pareto")
    assert "archs.studies.families" in modules
    forbidden = {m for m in modules if m.split(".")[0] == "streamlit" or m.startswith("archs.training.executors")
                 or m in ("archs.training.store", "archs.studies.experiments", "archs.training.request")}
    assert not forbidden
