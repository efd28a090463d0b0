"""Tests of fxlic.entropy.tables: quantize_pmf (ENT-Q*), TableSet (ENT-T*), gaussian_pmf (ENT-G1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fxlic.entropy.tables import (
    PRECISION,
    PROB_TOTAL,
    TableSet,
    gaussian_pmf,
    quantize_pmf,
    table_set_from_pmfs,
)

# pmf entries spanning zeros, denormals, tiny tails and huge magnitudes.
_entry = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=1e300, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, max_value=1e-300, allow_nan=False),
    st.floats(min_value=0.0, max_value=1.0),
)
_pmf = st.lists(_entry, min_size=2, max_size=300).filter(lambda v: math.fsum(v) > 0)


def _quantize_loop(pmf: np.ndarray, precision: int) -> np.ndarray:
    """ENT-Q1 ... ENT-Q4 written as the plain loops of docs/entropy.md (the lifting loop is O(n * zeros))."""
    p = np.asarray(pmf, dtype=np.float64)
    total = 1 << precision
    scaled = p / math.fsum(p.tolist()) * total
    f = [int(math.floor(x)) for x in scaled]
    while sum(f) > total:
        f[f.index(max(f))] -= 1
    rem = total - sum(f)
    frac = [x - math.floor(x) for x in scaled]
    order = sorted(range(len(f)), key=lambda i: (-frac[i], i))
    for j in range(rem):
        f[order[j % len(f)]] += 1
    for i in range(len(f)):
        if f[i] == 0:
            j = f.index(max(f))
            f[j] -= 1
            f[i] = 1
    return np.array(f, dtype=np.uint32)


@settings(max_examples=200, deadline=None)
@given(_pmf, st.sampled_from([8, 12, 16]))
def test_quantize_pmf_properties(pmf: list[float], precision: int) -> None:
    """ENT-Q5: sum is 2^precision, every frequency >= 1, uint32, deterministic, equal to the spec loops."""
    if len(pmf) > (1 << precision):
        with pytest.raises(ValueError):
            quantize_pmf(np.array(pmf), precision)
        return
    f = quantize_pmf(np.array(pmf), precision)
    assert f.dtype == np.uint32 and f.shape == (len(pmf),)
    assert int(f.sum()) == 1 << precision
    assert int(f.min()) >= 1
    cdf = np.concatenate([[0], np.cumsum(f)])
    assert np.all(np.diff(cdf) > 0)
    np.testing.assert_array_equal(f, quantize_pmf(np.array(pmf), precision))
    np.testing.assert_array_equal(f, _quantize_loop(np.array(pmf), precision))


def test_quantize_pmf_examples() -> None:
    """ENT-Q2/Q3/Q4 on hand-checked inputs."""
    # Exact quarters stay exact.
    np.testing.assert_array_equal(quantize_pmf(np.array([1, 1, 1, 1.0])), [16384] * 4)
    # Remainder to the largest fraction; ties to the lower index.
    np.testing.assert_array_equal(quantize_pmf(np.array([1, 1, 1.0]), 2), [2, 1, 1])
    # Zeros lifted to 1, taken from the largest entry.
    np.testing.assert_array_equal(quantize_pmf(np.array([0, 1.0, 0])), [1, PROB_TOTAL - 2, 1])
    # Normalization is applied: scale does not matter.
    a = np.array([0.3, 0.5, 0.2, 1e-12])
    np.testing.assert_array_equal(quantize_pmf(a), quantize_pmf(a * 1e200))
    # A full alphabet at this precision: every frequency becomes 1.
    np.testing.assert_array_equal(quantize_pmf(np.eye(256)[3], 8), np.ones(256))
    one_hot = np.zeros(1 << 16)
    one_hot[0] = 1.0
    big = quantize_pmf(one_hot)  # fast lifting path (65535 zeros)
    assert int(big.max()) == 1


@pytest.mark.parametrize(
    "pmf",
    [[1.0], [[0.5, 0.5]], [0.0, 0.0], [0.5, np.nan], [0.5, np.inf], [-0.1, 1.1], np.ones(70000)],
)
def test_quantize_pmf_rejects(pmf: object) -> None:
    """ENT-Q1: invalid pmfs raise ValueError."""
    with pytest.raises(ValueError):
        quantize_pmf(np.asarray(pmf, dtype=np.float64))


def _valid() -> dict[str, np.ndarray]:
    cdf = np.array([[0, 100, 65000, 65536, 65536], [0, 1, 2, 3, 65536]], dtype=np.uint32)
    return {"cdf": cdf, "num_symbols": np.array([3, 4], np.int32), "offset": np.array([-1, 5], np.int32)}


def test_tableset_valid_and_frozen() -> None:
    """ENT-T1: a valid set constructs; arrays are converted, read-only and not aliased."""
    arrays = _valid()
    ts = TableSet(**arrays)
    assert ts.num_tables == 2
    assert ts.cdf.dtype == np.uint32 and ts.num_symbols.dtype == np.int32 and ts.offset.dtype == np.int32
    assert not ts.cdf.flags.writeable
    arrays["cdf"][0, 1] = 7  # the caller's array is not shared
    assert int(ts.cdf[0, 1]) == 100
    np.testing.assert_array_equal(ts.freqs(0), [100, 64900, 536])


def _mutations() -> list[tuple[str, dict[str, np.ndarray]]]:
    out = []

    def mk(label: str, **changes: object) -> None:
        a = {k: v.copy() for k, v in _valid().items()}
        for k, v in changes.items():
            if callable(v):
                v(a[k])
            else:
                a[k] = v
        out.append((label, a))

    def setv(idx: tuple[int, ...], val: int):  # noqa: ANN202
        def f(arr: np.ndarray) -> None:
            arr[idx] = val

        return f

    mk("cdf0 nonzero", cdf=setv((0, 0), 1))
    mk("not increasing", cdf=setv((0, 2), 100))
    mk("decreasing", cdf=setv((1, 2), 0))
    mk("end not total", cdf=setv((0, 3), 65535))
    mk("above total", cdf=setv((1, 3), 70000))
    mk("padding", cdf=setv((0, 4), 0))
    mk("n too small", num_symbols=setv((0,), 1))
    mk("n too big", num_symbols=setv((1,), 5))
    mk("offset low", offset=setv((0,), -40000))
    mk("offset high", offset=setv((1,), 32767))
    mk("shape n", num_symbols=np.array([3], np.int32))
    mk("shape cdf", cdf=np.zeros(5, np.uint32))
    mk("float cdf", cdf=np.zeros((2, 5)))
    mk("negative cdf", cdf=np.full((2, 5), -1, np.int64))
    mk("narrow", cdf=np.array([[0, 65536], [0, 65536]]), num_symbols=np.array([1, 1]))
    return out


@pytest.mark.parametrize(("label", "arrays"), _mutations(), ids=[m[0] for m in _mutations()])
def test_tableset_validate_rejects(label: str, arrays: dict[str, np.ndarray]) -> None:
    """ENT-T1 ... ENT-T4: each violation raises ValueError (from the constructor, via validate)."""
    with pytest.raises(ValueError):
        TableSet(**arrays)


def test_to_from_arrays_npz(tmp_path: object) -> None:
    """to_arrays/from_arrays round trip through an .npz file; missing keys raise ValueError."""
    ts = TableSet(**_valid())
    path = f"{tmp_path}/m.npz"
    np.savez(path, **ts.to_arrays("entropy.y."), other=np.zeros(1))
    with np.load(path) as z:
        back = TableSet.from_arrays(z, "entropy.y.")
        with pytest.raises(ValueError, match="missing"):
            TableSet.from_arrays(z, "entropy.z.")
    for k in ("cdf", "num_symbols", "offset"):
        np.testing.assert_array_equal(getattr(ts, k), getattr(back, k))


def test_table_set_from_pmfs() -> None:
    """table_set_from_pmfs pads rows with 2^16 and keeps offsets; precision must be 16."""
    ts = table_set_from_pmfs([np.array([0.5, 0.5]), np.array([1, 2, 3, 4, 0.0])], [0, -2])
    assert ts.cdf.shape == (2, 6)
    assert list(ts.cdf[0]) == [0, 32768, 65536, 65536, 65536, 65536]
    assert list(ts.num_symbols) == [2, 5] and list(ts.offset) == [0, -2]
    with pytest.raises(ValueError):
        table_set_from_pmfs([np.array([0.5, 0.5])], [0], precision=12)
    with pytest.raises(ValueError):
        table_set_from_pmfs([np.array([0.5, 0.5])], [0, 1])


@settings(max_examples=60, deadline=None)
@given(
    st.floats(min_value=0.01, max_value=500.0),
    st.floats(min_value=-0.5, max_value=0.5),
    st.sampled_from([1e-9, 1e-6, 1e-3]),
)
def test_gaussian_pmf(sigma: float, m: float, tail: float) -> None:
    """ENT-G1: bins sum to 1 with the tail, L is minimal (or capped), the table builds."""
    pmf, off = gaussian_pmf(sigma, m, tail)
    L = -off
    assert pmf.size == 2 * L + 2 and 0 <= L <= 255
    assert np.all(pmf >= 0)
    assert abs(math.fsum(pmf.tolist()) - 1.0) < 1e-9
    if L < 255:
        assert pmf[-1] < tail
    if L > 0:
        smaller, _ = gaussian_pmf(sigma, m, tail, max_half_width=L - 1)
        assert smaller[-1] >= tail
    # The mode is next to the mean.
    assert abs(int(np.argmax(pmf[:-1])) + off - m) <= 1
    ts = table_set_from_pmfs([pmf], [off])
    assert int(ts.num_symbols[0]) == pmf.size


def test_gaussian_pmf_values() -> None:
    """ENT-G1 against a direct evaluation; argument checks."""
    pmf, off = gaussian_pmf(1.0, 0.25)
    phi = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    for k in (-3, 0, 2):
        ref = phi(k + 0.5 - 0.25) - phi(k - 0.5 - 0.25)
        assert abs(pmf[k - off] - ref) < 1e-15
    for bad in [(0.0, 0.0), (float("nan"), 0.0), (1.0, float("inf"))]:
        with pytest.raises(ValueError):
            gaussian_pmf(*bad)
    assert PRECISION == 16


def test_conditional_model_owns_the_shipped_y_tables(codec) -> None:
    """entropy/conditional.py is the one owner of the scale grid, the y tables and the table choice: what it
    builds is what the shipped model file carries, and the codec's table choice is its table_indexes."""
    from fxlic.entropy.conditional import (
        build_scale_lut,
        build_y_tables,
        mean_frac_bits_for,
        scale_grid,
        table_indexes,
    )

    model = codec.model
    fix_means = model.layers["h_s_means"].fix_out
    assert model.mean_frac_bits == mean_frac_bits_for(fix_means)
    built = build_y_tables(scale_grid(), model.mean_frac_bits)
    for key in ("cdf", "num_symbols", "offset"):
        assert np.array_equal(getattr(built, key), getattr(model.y_tables, key)), key
    fix_scales = model.layers["h_s_scales"].fix_out
    assert np.array_equal(build_scale_lut(fix_scales, scale_grid()), model.scale_lut)
    rng = np.random.default_rng(0)
    scales = rng.integers(-128, 128, (4, 3, 5)).astype(np.int8)
    means = rng.integers(-128, 128, (4, 3, 5)).astype(np.int8)
    got = codec.net.y_coding_params(scales, means)
    want = table_indexes(scales, means, model.scale_lut, fix_means, model.mean_frac_bits)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_mean_frac_bits_follow_the_mean_head() -> None:
    """ENT-M3: b = mean_frac_bits is the mean head's fix position f_μ, clamped to [2, 4] (2 without a head)."""
    from fxlic.entropy.conditional import MEAN_FRAC_BITS, MEAN_FRAC_BITS_MAX, mean_frac_bits_for

    assert (MEAN_FRAC_BITS, MEAN_FRAC_BITS_MAX) == (2, 4)
    assert [mean_frac_bits_for(f) for f in (None, -3, 0, 1, 2, 3, 4, 5, 7)] == [2, 2, 2, 2, 2, 3, 4, 4, 4]


def test_tables_at_the_mean_heads_resolution_code_the_same_latents_in_fewer_bits(train_dir) -> None:
    """A shipped model whose mean head is finer than 1/4 (f_μ = 3 at the low rates): with b = 2 its tables
    round μ once more than the model computed it (ENT-M3, μ_b = shr(q_μ, f_μ − b)). With b = f_μ the
    decoder reconstructs the same ŷ and pixels from a shorter y stream, on a training photo."""
    from fxlic import models
    from fxlic.codec import Codec
    from fxlic.entropy.bitstream import unpack
    from fxlic.entropy.conditional import MEAN_FRAC_BITS, build_y_tables, scale_grid
    from fxlic.imageio import read_image
    from fxlic.reference.modelfile import ModelFile

    shipped = [models.load("meanscale", q) for q in sorted(models.available()["meanscale"])]
    fine = [m for m in shipped if m.layers["h_s_means"].fix_out > MEAN_FRAC_BITS]
    if not fine:
        pytest.skip("no shipped mean-scale model has a mean head finer than 1/4")
    model = fine[0]
    fix_means = model.layers["h_s_means"].fix_out

    def with_tables(b: int) -> ModelFile:
        meta = {**model.meta, "entropy": {**model.meta["entropy"], "mean_frac_bits": b}}
        return ModelFile(meta=meta, layers=model.layers, scale_lut=model.scale_lut,
                         y_tables=build_y_tables(scale_grid(), b), z_tables=model.z_tables)

    pixels = np.ascontiguousarray(read_image(sorted(train_dir.glob("*.png"))[0])[:256, :384])
    coarse, exact = Codec(with_tables(MEAN_FRAC_BITS)), Codec(with_tables(fix_means))
    coded_coarse, coded_exact = coarse.encode(pixels), exact.encode(pixels)
    assert np.array_equal(coded_coarse.y_hat, coded_exact.y_hat)
    # μ_r may differ (with b < f_μ it is μ rounded twice), and with it the coded symbols ŷ − μ_r
    assert coded_exact.y_table_index.max() >= 64 << MEAN_FRAC_BITS  # tables beyond the coarse set are used
    assert np.array_equal(coarse.decode(coded_coarse.bitstream), exact.decode(coded_exact.bitstream))
    y_coarse, y_exact = unpack(coded_coarse.bitstream)[1][1], unpack(coded_exact.bitstream)[1][1]
    assert len(y_exact) < 0.99 * len(y_coarse), (len(y_exact), len(y_coarse))
