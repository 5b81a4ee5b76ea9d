"""The J&F functions (soc_mm/evaluation/functional/jf.py) on hand-computed cases and properties, and their
errors on bad input."""
import numpy as np
import pytest

import soc_mm  # noqa: F401
from rvos_metric_samples import square
from soc_mm.evaluation import (boundary_f_measure, boundary_map, boundary_tolerance, disk_kernel, jf_per_frame,
                               jf_statistics, region_similarity)

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def brute_force_f(pred, gt, radius):
    """F-measure from the definition: boundary pixels match within Euclidean distance ``radius``."""
    def match(src, dst):
        src_pts, dst_pts = np.argwhere(src), np.argwhere(dst)
        if len(dst_pts) == 0:
            return 0
        d2 = ((src_pts[:, None, :] - dst_pts[None, :, :]) ** 2).sum(-1)
        return int((d2.min(1) <= radius ** 2).sum())
    fb, gb = boundary_map(pred), boundary_map(gt)
    n_fg, n_gt = fb.sum(), gb.sum()
    if n_fg == 0 or n_gt == 0:
        precision, recall = (1.0 if n_fg == 0 else 0.0), (1.0 if n_gt == 0 else 0.0)
    else:
        precision, recall = match(fb, gb) / n_fg, match(gb, fb) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_empty_and_full_masks():
    empty, full = np.zeros((1, 20, 30), bool), np.ones((1, 20, 30), bool)
    assert region_similarity(empty, empty)[0] == 1.0 and boundary_f_measure(empty, empty)[0] == 1.0
    assert region_similarity(full, full)[0] == 1.0 and boundary_f_measure(full, full)[0] == 1.0
    obj = square(20, 30, 5, 5, 6)
    assert region_similarity(empty, obj)[0] == 0.0 and boundary_f_measure(empty, obj)[0] == 0.0
    assert region_similarity(obj, empty)[0] == 0.0 and boundary_f_measure(obj, empty)[0] == 0.0
    # DAVIS quirk kept on purpose: a full mask has no boundary pixel (image borders are not
    # boundaries), so full vs empty has F = 1 while J = 0.
    assert not boundary_map(full).any()
    assert region_similarity(full, empty)[0] == 0.0 and boundary_f_measure(full, empty)[0] == 1.0


def test_one_pixel_objects():
    pix = np.zeros((1, 30, 40), bool)
    pix[0, 10, 10] = True
    # boundary of one pixel: itself and its north, west and north-west neighbours
    assert sorted(map(tuple, np.argwhere(boundary_map(pix[0])))) == [(9, 9), (9, 10), (10, 9), (10, 10)]
    assert region_similarity(pix, pix)[0] == 1.0 and boundary_f_measure(pix, pix)[0] == 1.0
    radius = boundary_tolerance(30, 40)  # ceil(0.008 * 50) = 1
    assert radius == 1.0
    moved = np.roll(pix, 1, axis=2)  # d = 1 <= radius: every boundary pixel matches
    assert region_similarity(pix, moved)[0] == 0.0 and boundary_f_measure(pix, moved)[0] == 1.0
    moved = np.roll(pix, 2, axis=2)  # d = 2: half the boundary pixels on each side match
    assert boundary_f_measure(pix, moved)[0] == pytest.approx(0.5, abs=0)


def test_shifted_squares_non_square_frame():
    # 48x100 frame: tolerance ceil(0.008 * sqrt(48^2 + 100^2)) = ceil(0.887) = 1 pixel.
    assert boundary_tolerance(48, 100) == 1.0
    gt = square(48, 100, 10, 20, 10)
    # shift d = 1: J = (s - d) / (s + d) = 9/11, every boundary pixel within 1 px -> F = 1
    pred = square(48, 100, 10, 21, 10)
    assert region_similarity(pred, gt)[0] == pytest.approx(9 / 11, abs=1e-15)
    assert boundary_f_measure(pred, gt)[0] == 1.0
    # shift d = 2: J = 8/12; of the 40 ring pixels of pred 10 + 10 (top/bottom rows) + 2 (left
    # column next to the corners) are within 1 px of gt's ring: P = R = 22/40 -> F = 0.55
    pred = square(48, 100, 10, 22, 10)
    assert boundary_map(pred).sum() == 40
    assert region_similarity(pred, gt)[0] == pytest.approx(8 / 12, abs=1e-15)
    assert boundary_f_measure(pred, gt)[0] == pytest.approx(0.55, abs=1e-12)
    # with 2 px tolerance everything matches again
    assert boundary_f_measure(pred, gt, bound_th=2)[0] == 1.0


def test_border_touching_masks():
    height, width = 48, 100
    gt = np.zeros((1, height, width), bool)
    gt[..., width - 3:] = True  # touches top, bottom and right borders
    # only the inner edge is a boundary (column W-4), image borders are not
    assert np.array_equal(np.argwhere(boundary_map(gt[0]))[:, 1], np.full(height, width - 4))
    pred = np.zeros_like(gt)
    pred[..., width - 5:] = True  # inner edge at W-6: 2 px away
    assert region_similarity(pred, gt)[0] == pytest.approx(3 / 5, abs=1e-15)
    assert boundary_f_measure(pred, gt)[0] == 0.0  # tolerance 1 px
    assert boundary_f_measure(pred, gt, bound_th=2)[0] == 1.0
    left = np.zeros_like(gt)
    left[..., :3] = True  # touches the left border: boundary is column 2 only
    assert np.array_equal(np.argwhere(boundary_map(left[0]))[:, 1], np.full(height, 2))


def test_disk_kernel_matches_definition():
    assert np.array_equal(disk_kernel(1.0), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8))
    kernel = disk_kernel(12.0)
    ys, xs = np.mgrid[-12:13, -12:13]
    assert kernel.shape == (25, 25) and np.array_equal(kernel, (xs ** 2 + ys ** 2 <= 144).astype(np.uint8))


def test_properties_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(30):
        height, width = rng.integers(5, 60, size=2)
        a = rng.random((2, height, width)) < rng.random()
        b = np.roll(a, rng.integers(-4, 5), axis=2) ^ (rng.random((2, height, width)) < 0.05)
        j_ab, j_ba = region_similarity(a, b), region_similarity(b, a)
        f_ab = boundary_f_measure(a, b)
        assert np.array_equal(j_ab, j_ba)
        assert np.all((0 <= f_ab) & (f_ab <= 1)) and np.all((0 <= j_ab) & (j_ab <= 1))
        assert np.all(region_similarity(a, a) == 1) and np.all(boundary_f_measure(a, a) == 1)
        radius = boundary_tolerance(height, width)
        assert f_ab == pytest.approx([brute_force_f(p, g, radius) for p, g in zip(a, b)], abs=1e-12)
        j2, f2 = jf_per_frame(a, b)
        assert np.array_equal(j2, j_ab) and np.array_equal(f2, f_ab)


def test_jf_statistics():
    mean, recall, decay = jf_statistics([1.0, 1.0, 0.0, 0.0])
    assert (mean, recall, decay) == (0.5, 0.5, 1.0)  # bins [0:2] and [2:4]
    assert jf_statistics([0.7]) == (0.7, 1.0, 0.0)
    mean, recall, decay = jf_statistics([0.2, 0.9])  # 2 frames: decay = v0 - v1
    assert mean == pytest.approx(0.55) and recall == 0.5 and decay == pytest.approx(-0.7)
    mean, _, _ = jf_statistics([0.5, np.nan, 1.0])
    assert mean == 0.75


def test_function_input_errors():
    with pytest.raises(ValueError, match='differ in shape'):
        region_similarity(np.zeros((2, 4, 4), bool), np.zeros((3, 4, 4), bool))
    with pytest.raises(ValueError, match='binary'):
        boundary_f_measure(np.full((1, 4, 4), 0.5), np.zeros((1, 4, 4), bool))
