import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: see archs/__init__.py
os.environ.setdefault("ARCHS_SUPERVISOR_IDLE", "3")
# the layout/precision probe's decisions are cached on disk: a fresh cache per test session, not ~/.cache; and the
# pages' measurements are runs (quick jobs): a test that sets no runs folder writes them here, not in ./runs. Made by
# the process that starts the session (pytest-xdist's processes inherit them) and removed when it exits.
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

for _name, _prefix in (("ARCHS_CACHE_DIR", "archs-cache-"), ("ARCHS_RUNS_DIR", "archs-runs-")):
    if _name not in os.environ:
        os.environ[_name] = tempfile.mkdtemp(prefix=_prefix)
        atexit.register(shutil.rmtree, os.environ[_name], ignore_errors=True)
# worker processes import tests/faults.py as the operator's setup module: networks named fault-* misbehave there
os.environ["ARCHS_WORKER_SETUP"] = "faults"
_TESTS = str(Path(__file__).resolve().parent)
os.environ["PYTHONPATH"] = os.pathsep.join([_TESTS] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                       if p and p != _TESTS])

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# under pytest-xdist (`make test`), the worker processes share the cores rather than each taking them all
torch.set_num_threads(max(1, min(2, torch.get_num_threads()) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def torchvision_root(tmp_path_factory) -> Path:
    """A temporary copy of the real MNIST and Fashion-MNIST ``.gz`` files (torchvision layout)."""
    import shutil

    if not (SHARED_DATA / "MNIST" / "raw").is_dir() or not (SHARED_DATA / "FashionMNIST" / "raw").is_dir():
        pytest.skip(f"real MNIST / Fashion-MNIST files not found in {SHARED_DATA}")
    root = tmp_path_factory.mktemp("tvdata")
    for folder in ("MNIST", "FashionMNIST"):
        (root / folder / "raw").mkdir(parents=True)
        for gz in (SHARED_DATA / folder / "raw").glob("*.gz"):
            shutil.copy(gz, root / folder / "raw" / gz.name)
    return root


@pytest.fixture(autouse=True)
def _main_module_restored():
    """Streamlit's AppTest runs a page as ``sys.modules["__main__"]`` and leaves it there; multiprocessing's spawn
    then re-runs that page (or a hostile test's script) in every worker a later in-process supervisor starts, which
    failed CI once (a full-disk test's worker died raising the script's ValueError). Put the real one back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


# ----------------------------------------------------------------------------- one Chromium per browser module
from grouping import BROWSER_FIXTURE, pytest_collection_modifyitems  # noqa: E402,F401 (the hook: pytest finds it here)


@pytest.fixture(scope="module")
def browser():
    """The system Chromium through Playwright, started once for a module (a start costs seconds on a busy 2-core
    machine); each test opens contexts of its own (their own cookies: browsers of their own). Closed when the
    module ends: Playwright's sync API marks its event loop as running in the main thread while it is open, so a
    later test that runs an asyncio loop there (Ray's client may) must not run beside it."""
    from test_browser import CHROMIUM, launch

    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (CI: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


# ----------------------------------------------------------------------------- one Ray cluster for the Ray modules
RAY_GROUP = "ray"  # the xdist_group of tests/test_ray.py and tests/test_executor_contract.py


def _in_ray_group(item) -> bool:
    mark = item.get_closest_marker("xdist_group")
    return mark is not None and mark.args[:1] == (RAY_GROUP,)


@pytest.fixture
def local_ray():
    """A local Ray instance (2 CPUs), started by the first test that asks for one and kept while the next test in
    this process is one of the Ray modules' (one xdist_group, so under ``make test`` they run one after the other in
    one process); shut down after the last (``pytest_runtest_teardown`` below). One start for both modules where
    there were two (5-6.5 s each, and the cluster's daemons' CPU)."""
    ray = pytest.importorskip("ray", reason="the Ray executor's optional requirement (requirements-ray.txt)")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a test's own teardown: where the next test in this process is not a Ray module's, no Ray instance is
    left running beside it."""
    yield
    if nextitem is not None and _in_ray_group(nextitem):
        return
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
