"""The losses of soc_mm/models/losses/ (SOCHead's losses as a whole vs the official ones: test_soc_head.py)."""
import pytest
import torch
import torch.nn.functional as F

import soc_mm  # noqa: F401  (shims + registration)
from soc_mm.models.losses import QuerySentenceContrastiveLoss


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


def test_contrastive_loss_multi_positive_infonce():
    loss = QuerySentenceContrastiveLoss(loss_weight=2.0)
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(3, 5, 8, generator=g, requires_grad=True)
    sentence = torch.randn(3, 8, generator=g)
    index = torch.tensor([4, -1, 1])
    positives = torch.zeros(3, 5, dtype=torch.bool)
    positives[0, 4] = positives[2, 1] = True
    # one positive per video: the index form (SOC) and the mask form give the same value and gradient, bit for bit
    by_index, by_mask = loss(queries, sentence, index), loss(queries, sentence, positives)
    assert torch.equal(by_index, by_mask)
    log_prob = F.log_softmax(loss.similarity(queries, sentence), dim=-1)
    assert torch.equal(by_index, 2.0 * -(log_prob[0, 4] + log_prob[2, 1]) / 3)
    assert torch.equal(*(torch.autograd.grad(x, queries)[0] for x in (loss(queries, sentence, index),
                                                                       loss(queries, sentence, positives))))
    # several positives: -log of their summed probability; none: 0 (counted in the mean), finite gradient
    positives[2, 3] = True
    prob = log_prob.exp()
    expected = 2.0 * -(log_prob[0, 4] + torch.log(prob[2, 1] + prob[2, 3])) / 3
    several = loss(queries, sentence, positives)
    torch.testing.assert_close(several, expected)
    assert loss(queries, sentence, torch.zeros(3, 5, dtype=torch.bool)).item() == 0.0
    several.backward()
    assert torch.isfinite(queries.grad).all() and queries.grad[1].abs().sum() == 0
    with pytest.raises(ValueError, match=r'must lie in \[-1, 5\)'):
        loss(queries, sentence, torch.tensor([5, 0, 0]))
    with pytest.raises(ValueError, match=r'bool target_query must be \[B, 5\]'):
        loss(queries, sentence, torch.zeros(3, 4, dtype=torch.bool))
