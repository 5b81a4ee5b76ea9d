"""RVOSVideoBatchSampler and clip_key (soc_mm/datasets/video_batch_sampler.py): a video's expressions (same
clip) in one batch; the test loop with the sampler: tests/test_models/test_video_inference.py."""
import pytest


def test_clip_key_from_data_info_and_metainfo():
    from soc_mm.structures import clip_key
    base = dict(video_id='v', frame_ids=['0', '1'], dataset='ref_youtube_vos')
    assert clip_key(base) == clip_key(dict(base, exp_id='3', expression='another one'))
    assert clip_key(base) != clip_key(dict(base, frame_ids=['1', '2']))
    assert clip_key(base) != clip_key(dict(base, flip=True))
    assert clip_key(base) != clip_key(dict(base, valid_frame_idx=[1]))
    assert clip_key(base) != clip_key(dict(base, video_id='w'))
    assert clip_key(dict(frame_ids=['0'])) is None and clip_key(dict(video_id='v')) is None
    assert clip_key(dict(base, clip_key='c1')) == clip_key(dict(clip_key='c1')) != clip_key(dict(clip_key='c2'))


class _Dataset:
    def __init__(self, infos):
        self.infos = infos

    def get_data_info(self, i):
        return self.infos[i]

    def __len__(self):
        return len(self.infos)


def test_video_batch_sampler_groups_expressions_of_a_clip():
    from mmengine.dataset import DefaultSampler
    from soc_mm.datasets.video_batch_sampler import RVOSVideoBatchSampler
    frames = ['0', '1']
    infos = [dict(video_id='a', frame_ids=frames)] * 3 + [dict(video_id='b', frame_ids=frames)] + \
        [dict(video_id='c', frame_ids=frames)] * 5 + [dict(video_id='c', frame_ids=['9'])] + \
        [dict(exp_id='no video id')] * 2
    sampler = DefaultSampler(_Dataset(infos), shuffle=False, round_up=False)
    batches = list(RVOSVideoBatchSampler(sampler, batch_size=1, max_expressions=3))
    assert batches == [[0, 1, 2], [3], [4, 5, 6], [7, 8], [9], [10], [11]]
    assert len(RVOSVideoBatchSampler(sampler, max_expressions=3)) == 7
    with pytest.raises(ValueError, match='drop_last'):
        RVOSVideoBatchSampler(sampler, drop_last=True)
