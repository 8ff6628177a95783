"""The small reference blocks: short conv, norms, feature maps, sliding-window attention, rotary."""

import math

import pytest
import torch
import torch.nn.functional as F

from kernels.attention import RotaryEmbedding, sliding_window_attention, softmax_attention
from kernels.conv import ShortConvolution, causal_depthwise_conv
from kernels.feature_maps import FEATURE_MAPS, feature_dim, feature_map
from kernels.norm import GatedRMSNorm, RMSNorm, l2_normalize


def _masked_full_attention(q, k, v, window):
    T = q.shape[-2]
    scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    visible = (j <= i) & (j > i - window)
    return scores.masked_fill(~visible, float("-inf")).softmax(-1) @ v


@pytest.mark.parametrize("kernel_size", [1, 2, 4])
@pytest.mark.parametrize("activation", ["silu", None])
def test_short_convolution_step_matches_forward(kernel_size, activation):
    torch.manual_seed(0)
    conv = ShortConvolution(6, kernel_size=kernel_size, activation=activation, bias=True)
    x = torch.randn(2, 9, 6)
    state = conv.init_state(2)
    assert state.shape == (2, 6, kernel_size - 1)
    steps = []
    for t in range(x.shape[1]):
        y_t, state = conv.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), conv(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 9, 6, 4), (3, 1, 5, 4), (2, 3, 4, 4), (2, 7, 3, 1), (2, 5, 8, 2)])
def test_causal_depthwise_conv_matches_conv1d_with_gradients(shape):
    B, T, D, K = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    w = torch.randn(D, K, dtype=torch.float64, requires_grad=True)
    reference = F.conv1d(x.transpose(1, 2), w[:, None], padding=K - 1, groups=D)[..., :T].transpose(1, 2)
    y = causal_depthwise_conv(x, w)
    torch.testing.assert_close(y, reference)
    g = torch.randn_like(y)
    for ours, theirs in zip(torch.autograd.grad(y, (x, w), g), torch.autograd.grad(reference, (x, w), g)):
        torch.testing.assert_close(ours, theirs)


def test_short_convolution_is_causal():
    torch.manual_seed(0)
    conv = ShortConvolution(4, kernel_size=4)
    x = torch.randn(1, 10, 4)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(1, 4, 4)
    assert torch.equal(conv(x)[:, :6], conv(x2)[:, :6])


def test_short_convolution_rejects_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        ShortConvolution(4, activation="gelu")


def test_rms_norms_normalize_and_gate():
    torch.manual_seed(0)
    x, gate = torch.randn(3, 5, 8) * 7, torch.randn(3, 5, 8)
    y = RMSNorm(8)(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(3, 5), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(GatedRMSNorm(8)(x, gate), y * torch.nn.functional.silu(gate))


def test_l2_normalize_matches_f_normalize_with_gradients_even_at_zero():
    x = torch.randn(3, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(l2_normalize, (x,))
    with torch.no_grad():
        x[0, 0] = 0.0  # clamped by eps: the gradient is 1 / eps, with no projection term
        x[0, 1] *= 1e-14
    dy = torch.randn(3, 4, 6, dtype=torch.float64)
    ours, expected = l2_normalize(x), F.normalize(x, dim=-1)
    grad, = torch.autograd.grad(ours, x, dy)
    grad_expected, = torch.autograd.grad(expected, x, dy)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, grad_expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window", [1, 3, 8, 16, 64])
@pytest.mark.parametrize("T", [1, 7, 33])
def test_sliding_window_attention_equals_masked_full_attention(window, T):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, T, 8), torch.randn(2, 3, T, 8), torch.randn(2, 3, T, 5)
    expected = _masked_full_attention(q, k, v, window)
    torch.testing.assert_close(sliding_window_attention(q, k, v, window), expected, rtol=1e-5, atol=1e-5)


def test_sliding_window_attention_with_full_window_is_softmax_attention():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 11, 4) for _ in range(3))
    torch.testing.assert_close(sliding_window_attention(q, k, v, 11), softmax_attention(q, k, v))
    torch.testing.assert_close(
        softmax_attention(q, k, v), _masked_full_attention(q, k, v, 11), rtol=1e-5, atol=1e-5
    )


def test_sliding_window_attention_is_causal_and_differentiable():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 13, 4, requires_grad=True) for _ in range(3))
    o = sliding_window_attention(q, k, v, 4)
    o.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    k2 = k.detach().clone()
    k2[:, :, 9:] = 100.0
    assert torch.equal(sliding_window_attention(q, k2, v, 4)[:, :, :9], o[:, :, :9])


@pytest.mark.parametrize("head_dim", [8, 7])
def test_rotary_with_offset_matches_forward_positions(head_dim):
    torch.manual_seed(0)
    rotary = RotaryEmbedding(head_dim)
    q, k = torch.randn(2, 3, 10, head_dim), torch.randn(2, 3, 10, head_dim)
    q_full, k_full = rotary(q, k)
    for t in range(10):
        q_t, k_t = rotary(q[:, :, t : t + 1], k[:, :, t : t + 1], offset=torch.tensor(t))
        torch.testing.assert_close(q_t, q_full[:, :, t : t + 1], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(k_t, k_full[:, :, t : t + 1], rtol=1e-6, atol=1e-6)
    q_tail, _ = rotary(q[:, :, 4:], k[:, :, 4:], offset=4)
    torch.testing.assert_close(q_tail, q_full[:, :, 4:], rtol=1e-6, atol=1e-6)


def test_rotary_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    rotary = RotaryEmbedding(8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    q3, _ = rotary(q, k, offset=3)
    _, k1 = rotary(q, k, offset=1)
    q9, _ = rotary(q, k, offset=9)
    _, k7 = rotary(q, k, offset=7)
    torch.testing.assert_close((q3 * k1).sum(), (q9 * k7).sum(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rotary(q, k)[0], q, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(FEATURE_MAPS))
def test_feature_maps_have_declared_dimension(name):
    x = torch.randn(2, 3, 5, 4)
    y = feature_map(name)(x)
    assert y.shape == (2, 3, 5, feature_dim(name, 4))


def test_taylor2_has_dimension_one_plus_k_plus_k_squared():
    assert feature_dim("taylor2", 16) == 1 + 16 + 256


def test_taylor2_inner_product_is_second_order_exponential_expansion():
    """phi(q) . phi(k) = 1 + s + s^2 / 2 with s = q . k / sqrt(K)."""
    torch.manual_seed(0)
    K = 16
    q, k = torch.randn(50, K), torch.randn(50, K)
    phi = feature_map("taylor2")
    s = (q * k).sum(-1) / math.sqrt(K)
    torch.testing.assert_close((phi(q) * phi(k)).sum(-1), 1 + s + s**2 / 2, rtol=1e-5, atol=1e-5)
    assert ((phi(q) * phi(k)).sum(-1) > 0).all()


def test_elu_p1_is_non_negative_and_exp_below_zero():
    x = torch.linspace(-30, 5, 200)
    y = feature_map("elu_p1")(x)
    assert (y >= 0).all()
    torch.testing.assert_close(y[x < 0], x[x < 0].exp(), rtol=0, atol=1e-6)


def test_unknown_feature_map_is_rejected():
    with pytest.raises(ValueError, match="unknown feature map"):
        feature_map("cosine")


@pytest.mark.parametrize("T", [1, 5, 64, 65, 150])
def test_taylor_linear_attention_matches_the_expanded_features_with_gradients(T):
    from kernels.linear_attn import chunk_linear_attn, chunk_taylor_linear_attn

    torch.manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, d, dtype=torch.float64, requires_grad=True) for d in (5, 5, 7))
    phi = feature_map("taylor2")
    ours = chunk_taylor_linear_attn(q, k, v, chunk_size=32)
    expanded, _ = chunk_linear_attn(phi(q), phi(k), v, scale=1.0)
    torch.testing.assert_close(ours, expanded)
    g = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (q, k, v), g), torch.autograd.grad(expanded, (q, k, v), g)):
        torch.testing.assert_close(a, b)
