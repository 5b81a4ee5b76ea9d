"""The losses of soc_mm/models/losses/ (SOCHead's losses as a whole vs the official ones: test_soc_head.py)."""
import pytest
import torch

import soc_mm  # noqa: F401  (shims + registration)


def test_contrastive_loss_temperature():
    """Default = SOC's division by C (the fixtures check the value); a temperature divides instead,
    and a query-free video counts in the mean with 0."""
    from soc_mm.models.losses import QuerySentenceContrastiveLoss
    g = torch.Generator().manual_seed(0)
    q, s = torch.randn(2, 5, 16, generator=g), torch.randn(2, 16, generator=g)
    target = torch.tensor([3, -1])
    expect = lambda t: -torch.log_softmax((q[0] @ s[0]) / t, 0)[3] / 2  # noqa: E731
    assert torch.allclose(QuerySentenceContrastiveLoss()(q, s, target), expect(16.0))
    loss = QuerySentenceContrastiveLoss(loss_weight=2.0, temperature=4.0)
    assert torch.allclose(loss(q, s, target), 2 * expect(4.0))
    with pytest.raises(ValueError, match='temperature'):
        QuerySentenceContrastiveLoss(temperature=0.0)
