"""Eight fake CPU devices for every test, so sharding runs here as on a pod slice."""
import os
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
# One compilation cache for the suite's processes (xdist workers, the CLI subprocesses they start),
# outside the user's ~/.cache: a program compiled by one test is loaded by the next that builds it.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"pretrainx-tests-xla-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))

def pytest_addoption(parser):
    parser.addoption("--run-long", action="store_true",
                     help="also run the tests marked long (registry entries of 5 min or more)")


def pytest_collection_modifyitems(config, items):
    """Deselect (not skip) the long tests unless --run-long: CI's hour cannot hold them."""
    if config.getoption("--run-long"):
        return
    long = [item for item in items if item.get_closest_marker("long")]
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = [item for item in items if not item.get_closest_marker("long")]


SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def data_config(**fields):
    """A data section as a recipe has it: the preset of its ``kind`` (config/defaults.py) with
    ``fields`` set, so a test states only what it is about."""
    from pretrainx.config import defaults
    return defaults.with_defaults({"data": fields}).data
