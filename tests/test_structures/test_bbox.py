"""soc_mm/structures/bbox.py: SOC's generalized box IoU."""
import pytest
import torch

import soc_mm  # noqa: F401
from soc_mm.structures import soc_generalized_box_iou


def test_soc_generalized_box_iou_hand_computed():
    a = torch.tensor([[0., 0., 2., 2.], [0., 0., 0., 0.]])
    b = torch.tensor([[1., 1., 3., 3.], [0., 0., 0., 0.]])
    # I = 1, U = 7, E = 9: (I + eps) / (U + eps) - (E - U + eps) / (E + eps)
    expected = (1 + 1e-6) / (7 + 1e-6) - (2 + 1e-6) / (9 + 1e-6)
    aligned = soc_generalized_box_iou(a, b, is_aligned=True)
    assert aligned.shape == (2, )
    assert aligned[0].item() == pytest.approx(expected, rel=1e-6)
    assert aligned[1].item() == pytest.approx(0.0, abs=1e-7)  # two empty boxes: eps / eps - eps / eps
    pairwise = soc_generalized_box_iou(a, b)
    assert pairwise.shape == (2, 2)
    torch.testing.assert_close(pairwise.diagonal(), aligned, rtol=0, atol=0)
