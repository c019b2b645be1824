"""MFU arithmetic and the peak-FLOPs table; writers produce JSONL and TensorBoard events."""
import json
import os

import pytest

from pretrainx.run import metrics
from pretrainx.models import gpt, transformer


def test_peak_table():
    assert metrics.peak_flops_per_device("NVIDIA H100 80GB HBM3") == 989e12
    assert metrics.peak_flops_per_device("NVIDIA H100 PCIe") == 756e12
    assert metrics.peak_flops_per_device("TPU v4") == 275e12
    assert metrics.peak_flops_per_device("cpu") is None


def test_mfu_of_gpt2_at_nanogpt_speed():
    cfg = transformer.TransformerConfig(vocab_size=50304, num_layers=12, num_heads=12, embed_dim=768,
                                        max_len=1024)
    n = 124_337_664 - 1024 * 768 + (50304 - 50257) * 768   # non-embedding count, padded vocab
    fpt = gpt.flops_per_token(cfg, n, 1024)
    assert fpt == 6 * n + 12 * 12 * 12 * 64 * 1024
    # 478K tokens/s on one H100 SXM (nanoGPT + torch.compile): about 40 % MFU
    assert metrics.mfu(fpt, 478e3, 1, "NVIDIA H100 80GB HBM3") == pytest.approx(
        fpt * 478e3 / 989e12)
    assert metrics.mfu(fpt, 478e3, 1, "cpu") is None


def test_writer(tmp_path):
    w = metrics.MetricWriter(str(tmp_path))
    w.write(3, {"train/loss": 1.5, "train/lr": 1e-3})
    w.close()
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert rows == [{"step": 3, "train/loss": 1.5, "train/lr": 1e-3}]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))
