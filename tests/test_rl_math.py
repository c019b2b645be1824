"""The maths of preference learning and PPO (objectives/rl_math.py) against hand computations and
direct loops: Bradley–Terry, DPO/IPO, the clipped objective, GAE, per-token KL, the KL controller."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from pretrainx.objectives import rl_math


def test_bradley_terry_is_log2_at_equal_rewards_and_its_gradient_prefers_the_chosen():
    r = jnp.array([0.0, 1.5, -2.0])
    np.testing.assert_allclose(rl_math.bradley_terry_loss(r, r), math.log(2), rtol=1e-6)
    grad_c, grad_r = jax.grad(lambda c, j: rl_math.bradley_terry_loss(c, j).sum(), (0, 1))(r, r)
    assert (grad_c < 0).all() and (grad_r > 0).all()        # descent raises r+ and lowers r-
    np.testing.assert_allclose(grad_c, -0.5, rtol=1e-6)     # −σ(0)
    # the margin asks for a gap: equal rewards then cost −log σ(−m); centring penalises (r+ + r-)²
    np.testing.assert_allclose(rl_math.bradley_terry_loss(r, r, margin=1.0),
                               -np.log(1 / (1 + np.exp(1.0))), rtol=1e-6)
    got = rl_math.bradley_terry_loss(jnp.array([2.0]), jnp.array([1.0]), centring=0.1)
    np.testing.assert_allclose(got, -np.log(1 / (1 + np.exp(-1.0))) + 0.1 * 9.0, rtol=1e-6)


def test_dpo_is_log2_when_policy_equals_reference_and_ipo_matches_its_formula():
    lp = jnp.array([-10.0, -3.0]), jnp.array([-7.0, -4.0])
    loss, margin = rl_math.dpo_loss(*lp, *lp, beta=0.1)
    np.testing.assert_allclose(loss, math.log(2), rtol=1e-6)
    np.testing.assert_allclose(margin, 0.0)
    # policy moved toward the chosen response: h = (−9 − −10) − (−7 − −7) = 1
    loss, margin = rl_math.dpo_loss(jnp.array([-9.0]), jnp.array([-7.0]), jnp.array([-10.0]),
                                    jnp.array([-7.0]), beta=0.5)
    np.testing.assert_allclose(loss, np.log1p(np.exp(-0.5)), rtol=1e-6)
    np.testing.assert_allclose(margin, 0.5)
    ipo, _ = rl_math.dpo_loss(jnp.array([-9.0]), jnp.array([-7.0]), jnp.array([-10.0]),
                              jnp.array([-7.0]), beta=0.5, ipo=True)
    np.testing.assert_allclose(ipo, (1.0 - 1.0) ** 2, atol=1e-7)     # 1/(2β) = 1


def test_clipped_policy_loss_on_a_hand_computed_case():
    eps = 0.2
    # ratios 1.1 (inside), 1.5 (above), 0.5 (below), with positive and negative advantages
    ratio = jnp.array([[1.1, 1.5, 0.5, 1.1, 1.5, 0.5]])
    adv = jnp.array([[1.0, 1.0, 1.0, -1.0, -1.0, -1.0]])
    old = jnp.zeros_like(ratio)
    loss, clip_frac = rl_math.clipped_policy_loss(jnp.log(ratio), old, adv, jnp.ones_like(adv), eps)
    # per token: max(−A ρ, −A clip(ρ)):
    #   A=+1: ρ=1.1 -> −1.1; ρ=1.5 -> max(−1.5, −1.2) = −1.2 (clipped); ρ=0.5 -> max(−0.5, −0.8) = −0.5
    #   A=−1: ρ=1.1 -> 1.1;  ρ=1.5 -> max(1.5, 1.2) = 1.5;  ρ=0.5 -> max(0.5, 0.8) = 0.8 (clipped)
    want = np.mean([-1.1, -1.2, -0.5, 1.1, 1.5, 0.8])
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(clip_frac, 2 / 6, rtol=1e-6)
    # masked tokens do not count
    mask = jnp.array([[1, 1, 0, 0, 0, 0]], jnp.float32)
    loss, _ = rl_math.clipped_policy_loss(jnp.log(ratio), old, adv, mask, eps)
    np.testing.assert_allclose(loss, np.mean([-1.1, -1.2]), rtol=1e-6)


def test_gae_equals_a_direct_backward_recursion():
    rng = np.random.default_rng(0)
    B, N, gamma, lam = 3, 7, 0.97, 0.9
    rewards, values = rng.normal(size=(B, N)), rng.normal(size=(B, N))
    lengths = [7, 4, 1]
    mask = (np.arange(N)[None] < np.array(lengths)[:, None]).astype(np.float64)
    adv, ret = rl_math.gae(jnp.asarray(rewards, jnp.float32), jnp.asarray(values, jnp.float32),
                           jnp.asarray(mask, jnp.float32), gamma=gamma, lam=lam)
    want = np.zeros((B, N))
    for b, L in enumerate(lengths):
        last = 0.0
        for t in reversed(range(L)):
            next_value = values[b, t + 1] if t + 1 < L else 0.0
            delta = rewards[b, t] + gamma * next_value - values[b, t]
            last = delta + gamma * lam * last
            want[b, t] = last
    np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, (want + values) * mask, rtol=1e-5, atol=1e-5)


def test_token_rewards_put_the_score_on_the_last_real_token():
    kl = jnp.array([[0.1, 0.2, 0.3], [0.5, 0.0, 0.0]])
    mask = jnp.array([[1, 1, 1], [1, 0, 0]], jnp.float32)
    r = rl_math.token_rewards(jnp.array([2.0, -1.0]), kl, mask, 0.5)
    np.testing.assert_allclose(r, [[-0.05, -0.1, -0.15 + 2.0], [-0.25 - 1.0, 0, 0]], rtol=1e-6)


def test_value_loss_clips_and_explained_variance():
    v, old, ret = jnp.array([[2.0, 0.0]]), jnp.array([[0.0, 0.0]]), jnp.array([[1.0, 1.0]])
    # token 1: max((2−1)², (0.2−1)²) = 1; token 2: max(1, 1) = 1 -> ½·1
    np.testing.assert_allclose(rl_math.clipped_value_loss(v, old, ret, jnp.ones((1, 2)), 0.2), 0.5)
    v = jnp.array([[3.0, 1.0]])   # moved past the clip: the clipped error (0.2 − 3)² is taken
    np.testing.assert_allclose(rl_math.clipped_value_loss(v, old, jnp.array([[3.0, 1.0]]),
                                                          jnp.array([[1.0, 0.0]]), 0.2),
                               0.5 * 2.8 ** 2, rtol=1e-6)
    ret = jnp.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(rl_math.explained_variance(ret, ret, jnp.ones((1, 3))), 1.0)
    np.testing.assert_allclose(rl_math.explained_variance(jnp.full((1, 3), 2.0), ret,
                                                          jnp.ones((1, 3))), 0.0, atol=1e-6)


def test_kl_controller_moves_toward_its_target():
    up = rl_math.adaptive_kl_coef(0.1, 12.0, target=6.0, horizon=10000, batch_size=100)
    down = rl_math.adaptive_kl_coef(0.1, 1.0, target=6.0, horizon=10000, batch_size=100)
    np.testing.assert_allclose(up, 0.1 * (1 + 0.2 * 0.01), rtol=1e-6)     # error clipped at 0.2
    np.testing.assert_allclose(down, 0.1 * (1 - 0.2 * 0.01), rtol=1e-6)
