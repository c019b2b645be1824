"""Where numbers go: ``metrics.jsonl`` (its format: ``rundir``), TensorBoard events, and a
progress bar with loss, tokens/s, MFU and ETA. Only process 0 writes.

MFU = achieved FLOP/s over the summed peak dense bf16 FLOP/s of the devices in use. The FLOPs of
a step come from the objective (``Objective.flops_per_batch``); the causal LM counts nanoGPT's
``estimate_mfu`` 6N + 12·L·H·Q·T per token (N non-embedding parameters, L layers, H heads, Q head
size, T sequence length).
"""
from __future__ import annotations

import logging
import math
import os
import re
import sys
import time

import jax

from pretrainx.run import rundir

# Peak dense bf16 FLOP/s per JAX device, from the vendors' data sheets. A name matches jax's
# device_kind as a whole word ("L4" is not "L40S"); the longest matching name wins. TPU v2/v3
# chips hold two TensorCores, each a JAX device: half the chip's figure; v4 and v5p chips are
# one (megacore) device, v5e and v6e one core.
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100", 989e12),        # SXM
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 125e12),
    ("A10", 125e12),
    ("V100", 125e12),        # fp16 tensor cores
    ("TPU v6 lite", 918e12),
    ("TPU v6e", 918e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),      # v5p's device_kind
    ("TPU v5 lite", 197e12),
    ("TPU v5e", 197e12),
    ("TPU v4", 275e12),
    ("TPU v3", 61.5e12),     # 123 TFLOP/s per chip, 2 devices
    ("TPU v2", 22.5e12),     # 45 TFLOP/s per chip, 2 devices
)

log = logging.getLogger(__name__)


def peak_flops_per_device(device_kind: str | None = None) -> float | None:
    """Peak bf16 FLOP/s of one JAX device, or None where unknown (CPUs)."""
    kind = device_kind if device_kind is not None else jax.devices()[0].device_kind
    matches = [(len(name), flops) for name, flops in PEAK_BF16_FLOPS
               if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", kind)]
    return max(matches)[1] if matches else None


def mfu(flops_per_unit: float | None, units_per_sec: float, num_devices: int,
        device_kind: str | None = None) -> float | None:
    """Model FLOPs utilisation: FLOPs per unit (a step, a token) x units per second over peak;
    None where the FLOPs or the device's peak are unknown."""
    peak = peak_flops_per_device(device_kind)
    if not flops_per_unit or not peak:
        return None
    return flops_per_unit * units_per_sec / (peak * num_devices)


def _import_summary_writer():
    """tensorboardX's SummaryWriter, imported without torch: tensorboardX imports torch when it is
    installed only to accept torch tensors, which a JAX run never logs, and that import was 1.7 s
    of a run's start-up here. A torch the process already imported is left as it is."""
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None          # `import torch` inside raises ImportError: numpy only
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricWriter:
    """JSONL + TensorBoard (+ the trackers of ``run/trackers.py``); values are floats, keys like
    ``train/loss`` or ``val/loss``."""

    def __init__(self, workdir: str, tensorboard: bool = True, purge_step: int | None = None,
                 trackers=lambda: []):
        """``purge_step``: a resumed run's first step; TensorBoard drops the events logged at
        and after it by the killed run (metrics.jsonl is trimmed by ``rundir.trim_metrics``).
        ``trackers()``: the further writers, made on process 0 only."""
        self.enabled = jax.process_index() == 0
        self.jsonl = None
        self.tb = None
        self.trackers = []
        if not self.enabled:
            return
        self.trackers = trackers()
        self.workdir = workdir
        self.jsonl = rundir.open_metrics(workdir)
        if tensorboard:
            SummaryWriter = _import_summary_writer()
            self.tb = SummaryWriter(rundir.path(workdir, rundir.TENSORBOARD), purge_step=purge_step)

    def write(self, step: int, scalars: dict) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items()}
        if os.fstat(self.jsonl.fileno()).st_nlink == 0:   # deleted under the run: rows would vanish
            log.warning("%s was deleted while the run trained: the rows before step %d are gone; "
                        "writing a new one", rundir.path(self.workdir, rundir.METRICS), step)
            self.jsonl.close()
            self.jsonl = rundir.open_metrics(self.workdir)
        self.jsonl.write(rundir.metrics_line(step, clean))
        if self.tb is not None:
            for k, v in clean.items():
                if math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
        for tracker in self.trackers:
            tracker.log(step, clean)

    def write_text(self, step: int, tag: str, text: str) -> None:
        if self.enabled and self.tb is not None:
            self.tb.add_text(tag, text, step)

    def flush(self) -> None:
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
        for tracker in self.trackers:
            tracker.close()


class Throughput:
    """Steps/s and tokens/s over the window since the last call (the host syncs at each call)."""

    def __init__(self, step: int):
        self.last_step, self.last_time = step, time.perf_counter()

    def measure(self, step: int) -> float:
        now = time.perf_counter()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        return rate


class Progress:
    """tqdm bar showing loss, tokens/s and MFU; tqdm supplies the ETA."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.bar = None
        if enabled and jax.process_index() == 0:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, dynamic_ncols=True, unit="step")

    def update(self, step: int, postfix: dict) -> None:
        if self.bar is None:
            return
        self.bar.n = step
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line)
        elif jax.process_index() == 0:
            print(line, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
