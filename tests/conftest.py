"""Eight fake CPU devices for every test, so sharding runs here as on a pod slice."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def data_config(**fields):
    """A data section as a recipe has it: the preset of its ``kind`` (config/defaults.py) with
    ``fields`` set, so a test states only what it is about."""
    from pretrainx.config import defaults
    return defaults.with_defaults({"data": fields}).data
