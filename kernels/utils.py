"""Helpers shared by the recurrence ops: error metric, dtype/scale policy, chunking, scans."""

import torch
from torch import Tensor


def rel_rms_error(actual: Tensor, expected: Tensor) -> float:
    """RMS of (actual - expected) divided by the RMS of expected, computed in float64.

    Returns 0.0 when both are all zeros; the denominator is floored at 1e-30 so an all-zero
    `expected` with a nonzero `actual` gives a large, finite number rather than a division error.
    """
    if actual.shape != expected.shape:
        raise ValueError(f"shape mismatch: actual {tuple(actual.shape)} vs expected {tuple(expected.shape)}")
    a = actual.detach().double()
    e = expected.detach().double()
    num = (a - e).pow(2).mean().sqrt()
    den = e.pow(2).mean().sqrt().clamp_min(1e-30)
    return float(num / den)


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype a recurrence runs in: at least float32 (float64 inputs stay float64)."""
    return torch.promote_types(x.dtype, torch.float32)


def resolve_scale(scale: float | None, K: int) -> float:
    return K**-0.5 if scale is None else scale


def check_qkv(q: Tensor, k: Tensor, v: Tensor) -> tuple[int, int, int, int, int]:
    """Validate the head-first layout and return (B, H, T, K, V)."""
    if q.dim() != 4 or k.shape != q.shape or v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            "expected q, k: (B, H, T, K) and v: (B, H, T, V) with matching B, H, T; "
            f"got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    B, H, T, K = q.shape
    return B, H, T, K, v.shape[-1]


def check_shape(name: str, x: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(x.shape) != tuple(expected):
        raise ValueError(f"{name} must be {tuple(expected)}, got {tuple(x.shape)}")


def initial_state_or_zeros(initial_state: Tensor | None, B: int, H: int, K: int, V: int,
                           like: Tensor, dtype: torch.dtype) -> Tensor:
    if initial_state is None:
        return like.new_zeros(B, H, K, V, dtype=dtype)
    check_shape("initial_state", initial_state, (B, H, K, V))
    return initial_state.to(dtype)


# Per-step log-decays are floored here before the chunked forms take cumulative sums: exp(-40) ~ 4e-18
# already erases the state far below float32 resolution; the floor turns g = -inf (a hard reset) into
# finite arithmetic (-inf - -inf would be nan) and bounds a chunk's total decay for chunk_gla.
LOG_DECAY_FLOOR = -40.0


def run_steps(step, q: Tensor, k: Tensor, v: Tensor, per_token: tuple[Tensor, ...], scale: float | None,
              initial_state: Tensor | None, output_final_state: bool) -> tuple[Tensor, Tensor | None]:
    """The naive token loop shared by every op: apply ``step(q_t, k_t, v_t, *per_token_t, state, scale)``
    for t = 0..T-1. ``per_token`` holds the op's gates, each indexed by time on dim 2."""
    B, H, T, K, V = check_qkv(q, k, v)
    state = initial_state_or_zeros(initial_state, B, H, K, V, q, compute_dtype(q))
    return step_loop(step, q, k, v, per_token, scale, state, output_final_state)


def step_loop(step, q: Tensor, k: Tensor, v: Tensor, per_token: tuple[Tensor, ...], scale: float | None, state,
              output_final_state: bool) -> tuple[Tensor, object]:
    """``run_steps`` from a state already in hand, of whatever structure ``step`` keeps (a pair of slot
    matrices, a list of Fenwick slots)."""
    outputs = []
    for t in range(q.shape[2]):
        o_t, state = step(q[:, :, t], k[:, :, t], v[:, :, t], *(x[:, :, t] for x in per_token), state, scale)
        outputs.append(o_t)
    return torch.stack(outputs, dim=2), state if output_final_state else None


def chunk_log_decay(g: Tensor, chunk_size: int, floor: float = LOG_DECAY_FLOOR) -> Tensor:
    """Cumulative log-decay since each chunk's start, inclusive: (B, H, T[, K]) -> (B, H, N, C[, K]); each step's
    log-decay floored at ``floor`` (<= 0), so the result is >= chunk_size * floor."""
    return _ChunkCumsum.apply(to_chunks(g.clamp_min(floor), chunk_size))


class _ChunkCumsum(torch.autograd.Function):
    """cumsum over the chunk (dim 3) whose backward, the reverse cumsum, is one product with a C x C
    triangle of ones, accumulated in float64 as cumsum accumulates: autograd's flip, cumsum, flip over a
    middle dimension took ~2.5x as long. The forward stays a cumsum, which reads no later token even
    when one is not finite."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.cumsum(3)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        C = grad.shape[3]
        ones = torch.ones(C, C, dtype=torch.float64, device=grad.device)
        if grad.dim() == 5:  # (..., C, K): the sum over later tokens j >= i
            return torch.matmul(ones.triu(), grad.double()).to(grad.dtype)
        return torch.matmul(grad.double(), ones.tril()).to(grad.dtype)


def fit_chunk_size(T: int, chunk_size: int) -> int:
    """The chunk size actually used: chunk_size, or the next power of two >= T when that is smaller,
    so a short sequence is not padded to a full chunk."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    return min(chunk_size, 1 << max(T - 1, 0).bit_length())


def to_chunks(x: Tensor, chunk_size: int) -> Tensor:
    """Zero-pad the time axis (dim 2) to a multiple of chunk_size and split it into chunks.

    (B, H, T, ...) -> (B, H, N, C, ...). Zero padding at the end is harmless for every op here:
    a padded step has k = 0, v = 0, log-decay 0 and beta 0, so it leaves the state unchanged and
    its outputs are dropped.
    """
    T = x.shape[2]
    pad = -T % chunk_size
    if pad:
        x = torch.cat([x, x.new_zeros(*x.shape[:2], pad, *x.shape[3:])], dim=2)
    return x.unflatten(2, (x.shape[2] // chunk_size, chunk_size))


def from_chunks(x: Tensor, T: int) -> Tensor:
    """(B, H, N, C, ...) -> (B, H, T, ...), dropping the padding added by `to_chunks`."""
    return x.flatten(2, 3)[:, :, :T]


def pairwise_decay(b: Tensor) -> Tensor:
    """exp(b_i - b_j) for j <= i, 0 above the diagonal, from cumulative log-decays b: (..., C).

    The difference is taken before exp, so every kept entry is exp of a value <= 0 (b is
    non-increasing): no overflow however strong the decay. -> (..., C, C)
    """
    C = b.shape[-1]
    above = torch.ones(C, C, dtype=torch.bool, device=b.device).triu(1)
    return (b.unsqueeze(-1) - b.unsqueeze(-2)).masked_fill(above, float("-inf")).exp()


def invert_unit_lower(L: Tensor) -> Tensor:
    """(I + L)^-1 for strictly lower-triangular L: (..., C, C).

    A batched triangular solve against the identity (L's zero diagonal is read as the unit one).
    The Neumann product (I - L)(I + L^2)(I + L^4)... was measured no faster here and loses
    float32 precision when keys are strongly correlated and beta is near 2: its partial products
    grow like binomial(C, m) * (beta k.k)^m and cancel (rel. error 5e-3 at C = 16, 10 % in the
    delta rule's output over 200 steps). The backward is the closed form dL = -(T^T dT T^T)
    restricted to the strictly lower part: two matmuls instead of another solve.
    """
    return _InvertUnitLower.apply(L)


class _InvertUnitLower(torch.autograd.Function):
    @staticmethod
    def forward(ctx, L: Tensor) -> Tensor:
        eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device).expand_as(L)
        inv = torch.linalg.solve_triangular(L, eye, upper=False, unitriangular=True)
        ctx.save_for_backward(inv)
        return inv

    @staticmethod
    def backward(ctx, grad_inv: Tensor) -> Tensor:
        (inv,) = ctx.saved_tensors
        inv_t = inv.transpose(-1, -2)
        return -(inv_t @ grad_inv @ inv_t).tril(-1)


def chunk_state_scan(decay: Tensor | None, updates: Tensor, initial: Tensor) -> tuple[Tensor, Tensor]:
    """States entering each chunk of S_n = decay_n * S_{n-1} + X_n, and the state after the last chunk.

    updates X: (B, H, N, K, V); initial: (B, H, K, V); decay: None (no decay, a cumulative sum),
    (B, H, N) a scalar per head or (B, H, N, K) one per key channel.
    Returns ((B, H, N, K, V), (B, H, K, V)).
    """
    # A loop over chunks rather than a cumsum: N is small, and cumsum over a middle dimension (with
    # its flip-cumsum-flip backward) was ~5x slower than N adds for the wide states of BASED.
    factors = (None,) * updates.shape[2] if decay is None else (
        decay[..., None, None] if decay.dim() == 3 else decay[..., None]).unbind(2)
    state = initial
    before = []
    # unbind rather than indexing: one backward node for all chunks instead of N full-size zero fills
    for a, X in zip(factors, updates.unbind(2)):
        before.append(state)
        state = state + X if a is None else a * state + X
    return torch.stack(before, dim=2), state


# The factored products below run in the inputs' dtype (float32 or wider) when every cumulative log-decay is known
# to be >= -NARROW_SPAN: exp(-b) <= e^40 ~ 2e17 keeps float32 far from overflow, and exp(b) >= e^-40 ~ 4e-18 keeps
# a decayed row a normal float32 unless it was below ~3e-21 already. Otherwise they run in float64.
NARROW_SPAN = 40.0


def product_dtype(dtype: torch.dtype, chunk_size: int, floor: float) -> torch.dtype:
    """The dtype of decayed_chunk_products for chunks of ``chunk_size`` steps, each log-decay >= ``floor``. It
    depends on the bound alone, never on the values, so each output's rounding depends on earlier tokens only."""
    return dtype if chunk_size * -floor <= NARROW_SPAN else torch.float64


def decayed_chunk_products(b: Tensor, rows: tuple[Tensor, ...], cols: tuple[Tensor, ...],
                           reads_before: tuple[bool, ...], diagonals: tuple[int, ...],
                           floor: float = LOG_DECAY_FLOOR) -> tuple[Tensor, ...]:
    """The per-channel-decay terms of a chunked recurrence, in one autograd node.

    b: (..., C, K) cumulative log-decay since the chunk start, inclusive, >= C * floor (chunk_log_decay with
    the same floor);
    rows x_r and cols y_c: (..., C, K). Row r is decayed by e_r = b (reads_before[r] False: it
    reads the state after token i's decay) or by e_r = b shifted one token later (True: it reads
    the state before token i, S_{i-1}). Returns, in this order:

    - for each row r and col c, A_rc[i, j] = sum_k x_r[i, k] y_c[j, k] exp(e_r[i, k] - b[j, k]) for
      j <= i + diagonals[r] (0: j <= i, -1: j < i), else 0: (..., C, C);
    - for each row, x_r * exp(e_r) (decayed from the chunk start);
    - for each col, y_c * exp(b[-1] - b) (decayed to the chunk end);
    - exp(b[-1]), the whole chunk's decay: (..., K).

    The C x C products are factored about the chunk start, (x exp(e)) (y exp(-b))^T, in float64, as in
    chunk_gla: exp(-b) reaches e^640 for chunks of 16 floored at -40 per step, within float64's range
    (in the inputs' dtype instead, to that dtype's accuracy, where the floor bounds b within NARROW_SPAN,
    ``product_dtype``); the kept entries have exponents <= 0 and return to the inputs' dtype correctly
    rounded from float64; entries
    beyond the diagonal may be huge and are masked, never multiplied. Row i involves tokens <= i only,
    so the outputs are bit-exactly causal. Only the products, their adjoints and b's gradient through
    them run in float64; the decayed inputs, whose exponents are <= 0, and everything else stay in the
    inputs' dtype (this node's time is mostly passes over memory, and float64 doubles their bytes).
    Autograd through the same computation records ~25 nodes and twice as many full-size passes; the
    backward here is written out.
    """
    work = product_dtype(b.dtype, b.shape[-2], floor)
    if work != torch.float64 and b.numel() and b.min() < -NARROW_SPAN:  # a floor that b was not built with
        raise ValueError(f"decayed_chunk_products: the cumulative log-decay reaches {b.min().item():.4g}, below "
                         f"{b.shape[-2]} steps x the declared floor {floor:g}; build b with "
                         "chunk_log_decay(g, C, floor)")
    return _DecayedChunkProducts.apply(b, work, tuple(reads_before), tuple(diagonals), len(rows), *rows, *cols)


class _DecayedChunkProducts(torch.autograd.Function):
    # Rows and cols are stacked along a new dimension, (..., n, C, K), each written in place: one matmul
    # per col gives its products with every row as contiguous C x C blocks of a (n_rows C, C) matrix,
    # returned as they are (batch-strided contiguous matrices multiply about as fast as contiguous ones),
    # and the backward needs two matmuls in all. Strided copies and masks over rows of C elements cost
    # several times a contiguous pass, and mixed-dtype ops an extra cast each.

    @staticmethod
    def forward(ctx, b, work, reads_before, diagonals, n_rows, *xs):
        rows, cols = xs[:n_rows], xs[n_rows:]
        *batch, C, K = b.shape
        E = b.to(work, copy=True).exp_()  # exp(-b) <= e^640 below: a normal float64 (e^40 in float32)
        P = E.new_empty(*batch, n_rows, C, K)  # rows decayed from the chunk start
        for r, (x, before) in enumerate(zip(rows, reads_before)):
            _decay_(P[..., r, :, :].copy_(x), E, before)
        R = E.new_empty(*batch, len(cols), C, K)  # cols decayed back to the chunk start
        for c, y in enumerate(cols):
            R[..., c, :, :].copy_(y).div_(E)
        kept = _kept_products(C, diagonals, E.device)
        # where, not a product with the mask: entries beyond the diagonal may be inf once rounded
        products = [torch.where(kept, torch.matmul(P.flatten(-3, -2), R[..., c, :, :].transpose(-1, -2)).to(b.dtype), 0)
                    .unflatten(-2, (n_rows, C)) for c in range(len(cols))]
        from_start = [P[..., r, :, :].to(b.dtype, copy=True) for r in range(n_rows)]
        decay = b.exp()  # what remains has exponents <= 0: the inputs' dtype suffices
        to_end_decay = (b[..., -1:, :] - b).exp_()
        to_end = [y * to_end_decay for y in cols]
        ctx.save_for_backward(E, P, R, decay, to_end_decay, *to_end)
        ctx.layout = (reads_before, diagonals, n_rows, len(cols))
        return (*(M[..., r, :, :] for r in range(n_rows) for M in products), *from_start, *to_end,
                decay[..., -1, :].clone())

    @staticmethod
    def backward(ctx, *grads):
        reads_before, diagonals, n_rows, n_cols = ctx.layout
        E, P, R, decay, to_end_decay, *to_end = ctx.saved_tensors
        C, dtype = E.shape[-2], decay.dtype
        n_products = n_rows * n_cols
        d_products, d_from_start = grads[:n_products], grads[n_products:n_products + n_rows]
        d_to_end, d_decay = grads[n_products + n_rows:-1], grads[-1]
        kept = _kept_products(C, diagonals, E.device).repeat(1, n_cols)
        dM = torch.cat([torch.cat(d_products[r * n_cols:(r + 1) * n_cols], dim=-1) for r in range(n_rows)], dim=-2)
        dM = torch.where(kept, dM, 0).to(E.dtype)  # (..., n_rows C, n_cols C)
        dP = torch.matmul(dM, R.flatten(-3, -2)).unflatten(-2, (n_rows, C))
        for r, dF in enumerate(d_from_start):  # from_start = P: its adjoint joins the products' here
            dP[..., r, :, :] += dF
        dR = torch.matmul(dM.transpose(-1, -2), P.flatten(-3, -2)).unflatten(-2, (n_cols, C))
        # b's gradient through the products and the rows' decay, + dP * P (rows) - dR * R (cols), is taken in
        # float64: a token against itself (exponent 0) appears in both terms, which cancel exactly only there.
        db64 = torch.mul(dP[..., 0, :, :], P[..., 0, :, :]) if not reads_before[0] else torch.zeros_like(E)
        for r, before in enumerate(reads_before):
            if before:
                db64[..., :-1, :].addcmul_(dP[..., r, 1:, :], P[..., r, 1:, :])
            elif r:
                db64.addcmul_(dP[..., r, :, :], P[..., r, :, :])
        for c in range(n_cols):
            db64.addcmul_(dR[..., c, :, :], R[..., c, :, :], value=-1)
        db = db64.to(dtype)
        # The cols' decayed inputs (exponents <= 0) in the inputs' dtype: y receives its adjoint decayed, b
        # receives - dT * T through exp(b[-1] - b), and through exp(b[-1]) the to-end factors and the chunk decay.
        d_xs = [_decay_(dP[..., r, :, :], E, before).to(dtype) for r, before in enumerate(reads_before)]
        d_ys = []
        d_end = d_decay * decay[..., -1, :]
        for c, (dT, T) in enumerate(zip(d_to_end, to_end)):
            d_ys.append(dR[..., c, :, :].div_(E).to(dtype).addcmul_(dT, to_end_decay))
            dTT = dT * T  # the same rounded terms leave token j and reach the chunk's end
            db -= dTT
            d_end = d_end + dTT.sum(-2)
        db[..., -1, :] += d_end
        return (db, None, None, None, None, *d_xs, *d_ys)


def _decay_(x: Tensor, E: Tensor, before: bool) -> Tensor:
    """x *= E in place, or E one token later (x's first token undecayed) when before."""
    if not before:
        return x.mul_(E)
    x[..., 1:, :].mul_(E[..., :-1, :])
    return x


def _kept_products(C: int, diagonals: tuple[int, ...], device: torch.device) -> Tensor:
    """The entries of one col's products with every row, stacked (n_rows C, C), that tril keeps."""
    keep = torch.ones(C, C, dtype=torch.bool, device=device)
    return torch.cat([keep.tril(d) for d in diagonals])


def batched_addmm(acc: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """acc + a @ b for matrices batched alike, (..., m, k) @ (..., k, n): the sum without a pass of its own."""
    return torch.baddbmm(acc.flatten(0, -3), a.flatten(0, -3), b.flatten(0, -3)).view(acc.shape)
