"""The pure maths of preference learning and PPO, shared by the ``reward``, ``dpo`` and ``ppo``
objectives and tested against hand computations (tests/test_rl_math.py).

Arrays are named by shape: B rows, N response tokens; ``mask_BxN`` is 1 on a row's real response
tokens (a prefix: tokens up to and including EOS) and 0 after.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_mean(x, mask, axis=None):
    mask = mask.astype(x.dtype)
    return (x * mask).sum(axis) / jnp.maximum(mask.sum(axis), 1.0)


def whiten(x, mask, shift_mean: bool = True):
    """(x - mean) / std over the masked entries (PPO's advantage normalisation)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * jax.lax.rsqrt(var + 1e-8)
    return out if shift_mean else out + mean


# ---- preference losses ----------------------------------------------------------------------

def bradley_terry_loss(r_chosen_B, r_rejected_B, *, margin=0.0, centring: float = 0.0):
    """Per-pair −log σ(r⁺ − r⁻ − margin) + centring · (r⁺ + r⁻)²: the Bradley–Terry negative log
    likelihood that the chosen response wins; ``margin`` asks for a gap of at least that much
    (Llama 2's margin loss), the centring term keeps the rewards' mean near 0 (the scale of a BT
    reward is fixed only up to a constant, which otherwise drifts)."""
    nll = -jax.nn.log_sigmoid(r_chosen_B - r_rejected_B - margin)
    return nll + centring * (r_chosen_B + r_rejected_B) ** 2


def dpo_loss(policy_chosen_B, policy_rejected_B, ref_chosen_B, ref_rejected_B, *, beta: float,
             ipo: bool = False):
    """Per-pair DPO loss −log σ(β h) with h = (log π⁺ − log π_ref⁺) − (log π⁻ − log π_ref⁻),
    the log-probabilities summed over each response; with ``ipo`` the IPO loss (h − 1/(2β))²,
    which does not push h to infinity on deterministic preferences. Also returns β h, the gap
    of DPO's implicit rewards."""
    h = (policy_chosen_B - ref_chosen_B) - (policy_rejected_B - ref_rejected_B)
    loss = (h - 1.0 / (2.0 * beta)) ** 2 if ipo else -jax.nn.log_sigmoid(beta * h)
    return loss, beta * h


# ---- PPO --------------------------------------------------------------------------------------

def per_token_kl(logp_BxN, ref_logp_BxN):
    """log π(y_t) − log π_ref(y_t) at the sampled tokens: the unbiased single-sample estimate of
    KL(π ‖ π_ref) per token (its sum over a response estimates the sequence KL)."""
    return logp_BxN - ref_logp_BxN


def token_rewards(score_B, kl_BxN, mask_BxN, kl_coef):
    """r_t = −β·kl_t at every response token, plus the sequence's score at its last token."""
    lengths_B = mask_BxN.sum(-1).astype(jnp.int32)
    last_BxN = jax.nn.one_hot(jnp.maximum(lengths_B - 1, 0), mask_BxN.shape[1]) * (lengths_B > 0)[:, None]
    return (-kl_coef * kl_BxN + score_B[:, None] * last_BxN) * mask_BxN


def gae(rewards_BxN, values_BxN, mask_BxN, *, gamma: float, lam: float):
    """Generalised advantage estimation (Schulman et al. 2016) over each response, the episode
    ending after its last real token (no bootstrap from the value beyond it):
        δ_t = r_t + γ V_{t+1} − V_t,   A_t = δ_t + γλ A_{t+1},   returns = A + V."""
    mask = mask_BxN.astype(rewards_BxN.dtype)
    next_values = jnp.concatenate([values_BxN[:, 1:] * mask[:, 1:],
                                   jnp.zeros_like(values_BxN[:, :1])], axis=1)
    next_mask = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)
    deltas = rewards_BxN + gamma * next_values - values_BxN

    def back(carry_B, xs):
        delta_B, cont_B = xs
        adv_B = delta_B + gamma * lam * cont_B * carry_B
        return adv_B, adv_B

    _, adv_NxB = jax.lax.scan(back, jnp.zeros_like(deltas[:, 0]), (deltas.T, next_mask.T),
                              reverse=True)
    advantages = adv_NxB.T * mask
    return advantages, (advantages + values_BxN) * mask


def clipped_policy_loss(logp_BxN, old_logp_BxN, advantages_BxN, mask_BxN, clip: float):
    """PPO's clipped surrogate, as a loss: mean over tokens of max(−A·ρ, −A·clip(ρ, 1±ε)),
    ρ = π/π_old; also the share of tokens where the clipped term is the one taken."""
    ratio = jnp.exp(logp_BxN - old_logp_BxN)
    unclipped = -advantages_BxN * ratio
    clipped = -advantages_BxN * jnp.clip(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(jnp.maximum(unclipped, clipped), mask_BxN)
    clip_fraction = masked_mean((clipped > unclipped).astype(jnp.float32), mask_BxN)
    return loss, clip_fraction


def clipped_value_loss(values_BxN, old_values_BxN, returns_BxN, mask_BxN, clip: float):
    """½ · mean of max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²): the value update is kept
    near the rollout's values as the policy's is (PPO2's value clipping)."""
    clipped = old_values_BxN + jnp.clip(values_BxN - old_values_BxN, -clip, clip)
    return 0.5 * masked_mean(jnp.maximum((values_BxN - returns_BxN) ** 2,
                                         (clipped - returns_BxN) ** 2), mask_BxN)


def explained_variance(values_BxN, returns_BxN, mask_BxN):
    """1 − Var(R − V) / Var(R): 1 for a perfect value function, 0 for a constant one."""
    var_r = masked_mean((returns_BxN - masked_mean(returns_BxN, mask_BxN)) ** 2, mask_BxN)
    err = returns_BxN - values_BxN
    var_e = masked_mean((err - masked_mean(err, mask_BxN)) ** 2, mask_BxN)
    return 1.0 - var_e / jnp.maximum(var_r, 1e-8)


def adaptive_kl_coef(coef, kl, *, target: float, horizon: float, batch_size: int):
    """Ziegler et al. (2019)'s controller: β ← β · (1 + clip(KL/target − 1, ±0.2) · n/horizon),
    n the samples of the step; β grows while the KL is above its target and shrinks below."""
    error = jnp.clip(kl / target - 1.0, -0.2, 0.2)
    return coef * (1.0 + error * batch_size / horizon)
