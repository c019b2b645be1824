"""Kill -> resume for one config, the way test_mlm / test_span_corruption / test_ul2 check it: an
uninterrupted run, a run killed after ``kill_after`` steps (its last checkpoint before that),
then the rerun of the killed workdir. The rerun must replay the remaining steps with the same
losses, bit for bit, and end with the same parameters."""
import jax
import numpy as np

from pretrainx.core import train


def train_losses(history, key="train/loss"):
    return {h["step"]: h[key] for h in history if key in h}


def assert_kill_and_resume_is_exact(cfg, base, *, kill_after, keys=("train/loss",)):
    """``cfg`` logs every step and checkpoints before ``kill_after``; returns the two results."""
    full = train.run(cfg, str(base / "full"))
    killed = train.run(cfg, str(base / "killed"), stop_after=kill_after)
    assert killed.stopped_early
    resumed = train.run(cfg, str(base / "killed"))
    saved = max(s for s in range(kill_after + 1) if s and s % cfg.checkpoint.every == 0)
    for key in keys:
        whole, after = train_losses(full.history, key), train_losses(resumed.history, key)
        assert sorted(after) == list(range(saved + 1, cfg.train.steps + 1)), (key, sorted(after))
        assert all(after[s] == whole[s] for s in after), (key, after, whole)
    assert int(resumed.state.step) == cfg.train.steps
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.state.params),
                 jax.device_get(full.state.params))
    return full, resumed
