"""QueryPropagationSOC (soc_mm/models/detectors/query_propagation_soc.py): SOC whose frame decoder decodes the
frames of a clip in order, each from the previous frame's queries; SOC itself has no such option."""
import inspect
import os.path as osp

import pytest
import torch

from conftest import FIXTURE_ROOT, MAIN_VARIANT, load_fixture
import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.detectors import SOC, QueryPropagationSOC
from soc_mm.official.reference import build_reference_model, fixture_batch, zero_dropout


def build(variant: str = MAIN_VARIANT, **overrides):
    """The golden-fixture model (official weights converted by our converter), eval mode."""
    torch.set_num_threads(1)
    model, _ = build_reference_model(osp.join(FIXTURE_ROOT, variant), batch_regroup=False, **overrides)
    return model.eval()


def test_query_propagation_decodes_each_frame_from_the_previous_one():
    """Frame 0 is decoded as SOC does, frame t from frame t-1's last-layer queries and box centres (so a
    change in frame 0's memory reaches frame 1 of that video only); in SOC the frames are independent.
    SOC's weights load strictly (no weights of its own)."""
    official = build()
    propagating = build(type='QueryPropagationSOC')
    assert type(propagating) is QueryPropagationSOC and type(official) is SOC
    propagating.load_state_dict(official.state_dict(), strict=True)
    B, T, C = 2, 3, official.embed_dims
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[5, 4], [2, 3], [1, 2], [1, 2]])[:official.num_feature_levels]
    S = int((shapes[:, 0] * shapes[:, 1]).sum())
    memory = torch.randn(B * T, S, C, generator=g)
    level_start = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])

    def decode(model, mem):
        inputs = model.pre_decoder(mem, None, shapes)
        del inputs['memory']
        with torch.no_grad():
            return model.forward_decoder(**inputs, memory=mem, memory_mask=None, spatial_shapes=shapes,
                                         level_start_index=level_start,
                                         valid_ratios=torch.ones(B * T, len(shapes), 2), num_videos=B)

    plain, prop = decode(official, memory), decode(propagating, memory)
    frame = lambda out, b, t: out['hidden_states'][:, b * T + t]  # noqa: E731
    for b in range(B):
        torch.testing.assert_close(frame(prop, b, 0), frame(plain, b, 0))
        assert not torch.allclose(frame(prop, b, 1), frame(plain, b, 1))
    # frame 1 decoded alone from frame 0's outputs gives the propagated frame 1
    alone = official.decoder(query=prop['hidden_states'][-1, 0::T], query_pos=official.query_embedding.weight[None]
                             .expand(B, -1, -1), value=memory[1::T], key_padding_mask=None,
                             reference_points=prop['references'][-1][0::T, :, :2], spatial_shapes=shapes,
                             level_start_index=level_start, valid_ratios=torch.ones(B, len(shapes), 2),
                             reg_branches=official.bbox_head.reg_branches)[0]
    torch.testing.assert_close(alone.detach(), prop['hidden_states'][:, 1::T])
    assert len(prop['references']) == len(plain['references'])
    for ours, ref in zip(prop['references'], plain['references']):
        assert ours.shape == ref.shape
    # a change in video 0's frame 0 reaches its frame 1 (propagation) but not video 1, and not in SOC
    changed = memory.clone()
    changed[0] += 1.0
    plain2, prop2 = decode(official, changed), decode(propagating, changed)
    assert not torch.allclose(frame(prop2, 0, 1), frame(prop, 0, 1))
    torch.testing.assert_close(frame(prop2, 1, 1), frame(prop, 1, 1))
    torch.testing.assert_close(frame(plain2, 0, 1), frame(plain, 0, 1))
    with pytest.raises(ValueError, match='QueryPropagationSOC: 6 frames do not split into 4 videos'):
        inputs = propagating.pre_decoder(memory, None, shapes)
        propagating.forward_decoder(**inputs, memory_mask=None, spatial_shapes=shapes, level_start_index=level_start,
                                    valid_ratios=torch.ones(B * T, len(shapes), 2), num_videos=4)
    # the whole model trains with it
    inputs, samples = fixture_batch(load_fixture(MAIN_VARIANT, 'inputs.pt'), with_targets=True)
    losses = zero_dropout(propagating).train()(inputs, samples, mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert propagating.query_embedding.weight.grad is not None


def test_soc_has_no_experiment_options():
    """The experiment switches are variants now: SOC refuses the old keyword arguments (a config that still
    sets them fails when built) and its source does not name them."""
    from soc_mm.models.detectors import soc as soc_module
    for option in ('query_propagation', 'voc_batch_regroup_compat'):
        with pytest.raises(TypeError, match=option):
            build(**{option: True})
    source = inspect.getsource(soc_module)
    for name in ('query_propagation', 'voc_batch_regroup_compat', 'sentence_feature=', 'box_encoding',
                 'motion_encoding', 'temporal_pos_encoding', 'per_slot_clustering', 'sentence_product'):
        assert name not in source, name
