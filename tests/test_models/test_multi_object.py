"""Several referred objects per expression, or none (MeViS), through SOC: the golden losses with a list of
one referred object, clips with different object counts merged, SOC.predict with threshold selection
(SOCHead's part: test_soc_head.py; the contrastive loss: test_losses.py)."""
import os.path as osp

import torch
from mmengine.structures import InstanceData

import soc_mm  # noqa: F401  (registration)
from conftest import FIXTURE_ROOT, MAIN_VARIANT
from soc_mm.models.inference import merge_clip_results
from soc_mm.structures import RVOSDataSample


def test_golden_losses_unchanged_with_a_list_of_one_referred_object():
    """The official model's golden losses (tests/data/soc_reference) are reproduced whether the referred
    instance is given as an int ``ref_inst_idx`` or as a one-element list (bit for bit)."""
    from soc_mm.official.reference import _load, _loss_rows, build_reference_model, fixture_batch, zero_dropout
    fixture = osp.join(FIXTURE_ROOT, MAIN_VARIANT)
    torch.set_num_threads(1)
    model, _ = build_reference_model(fixture)
    zero_dropout(model).train()
    clips, samples = fixture_batch(_load(osp.join(fixture, 'inputs.pt')), with_targets=True)
    listed = []
    for s in samples:
        meta = dict(s.metainfo)
        meta['ref_inst_idx'] = [meta['ref_inst_idx']]
        listed.append(RVOSDataSample(metainfo=meta, gt_instances=s.gt_instances))
    by_index = model(clips, samples, mode='loss')
    by_list = model(clips, listed, mode='loss')
    assert by_index.keys() == by_list.keys()
    for name in by_index:
        assert torch.equal(by_index[name], by_list[name]), name
    rows = _loss_rows(model, by_list, _load(osp.join(fixture, 'losses_train.pt')))
    assert rows and all(r.ok for r in rows), [r for r in rows if not r.ok]


def test_clips_with_different_object_counts_merge_padded():
    def clip(query_lists):
        k = len(query_lists)
        return InstanceData(masks=torch.ones(1, 2, 2, dtype=torch.bool), scores=torch.ones(1),
                            object_masks=torch.ones(1, k, 2, 2, dtype=torch.bool),
                            object_scores=torch.full((1, k), 0.5),
                            object_query_index=torch.tensor([query_lists], dtype=torch.long))
    (merged, ) = merge_clip_results([[clip([3, 1])], [clip([])], [clip([0])]])
    assert merged.object_query_index.tolist() == [[3, 1], [-1, -1], [0, -1]]
    assert merged.object_scores.tolist() == [[0.5, 0.5], [0.0, 0.0], [0.5, 0.0]]
    assert merged.object_masks.flatten(2).any(-1).tolist() == [[True, True], [False, False], [True, False]]


def test_soc_predict_with_threshold_selection_unites_the_selected_queries():
    """Through SOC.predict (VideoInference, clips of 2 frames): score_thr 0 selects every query, so
    pred_masks is the union of every query's mask (return_all_queries) in every clip."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from conftest import REPO_ROOT, TEXT_ENCODER_DIR
    from soc_mm.registry import MODELS
    torch.set_num_threads(1)
    init_default_scope('soc_mm')
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')).model
    cfg.text_encoder.model_path = TEXT_ENCODER_DIR
    cfg.test_cfg = dict(cfg.test_cfg, object_selection='threshold', score_thr=0.0, return_all_queries=True,
                        clip_len=2)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    clip = torch.randint(0, 256, (4, 3, 32, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    sample = RVOSDataSample(metainfo=dict(img_shape=(32, 48), ori_shape=(64, 96), expression='the two red squares',
                                          video_id='v', frame_ids=['0', '1', '2', '3']))
    data = model.data_preprocessor(dict(inputs=[clip], data_samples=[sample]), False)
    with torch.no_grad():
        (pred, ) = model.predict(**data)
    nq = cfg.num_queries
    assert pred.pred_masks.shape == (4, 64, 96)
    assert pred.pred_instances.masks.shape == (nq, 4, 64, 96)
    assert torch.equal(pred.pred_masks, pred.pred_instances.masks.any(0))
    torch.testing.assert_close(pred.pred_scores, pred.pred_instances.scores.max(0)[0])  # K = 1
    # the selected objects themselves reach the data sample (every query: score_thr 0)
    objects = pred.pred_objects
    assert objects.masks.shape == (nq, 4, 64, 96) and objects.scores.shape == (nq, 4)
    assert torch.equal(objects.masks.any(0), pred.pred_masks)
    assert sorted(objects.query_index[:, 0].tolist()) == list(range(nq))
