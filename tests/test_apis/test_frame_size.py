"""Frames too small for the model are refused up front with their size and the minimum, instead of
torch's "Expected more than 1 value per channel when training" from deep inside the network."""
import os.path as osp
import re

import numpy as np
import pytest
import torch

from conftest import FIXTURE_ROOT, REPO_ROOT
from soc_mm.apis.inference import MIN_FRAME_SIZE, check_frame_size

TEXT_ENCODER = osp.join(FIXTURE_ROOT, 'common', 'text_encoder')


def test_check_frame_size_messages():
    check_frame_size((MIN_FRAME_SIZE, 500), (MIN_FRAME_SIZE, 500))
    with pytest.raises(ValueError, match=re.escape(
            "the video's frames are 4x4 pixels (H x W); the model needs frames of at least 8x8 pixels after "
            'resizing')):
        check_frame_size((4, 4), (4, 4))
    with pytest.raises(ValueError, match=re.escape(
            "the video's frames are 3x2000 pixels (H x W, 1x640 after the test pipeline's resize)")):
        check_frame_size((3, 2000), (1, 640))


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    from soc_mm.apis import init_model
    path = tmp_path_factory.mktemp('cfg') / 'tiny_soc.py'
    base = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')
    path.write_text(f"_base_ = [{base!r}]\nmodel = dict(text_encoder=dict(model_path={TEXT_ENCODER!r}))\n")
    torch.manual_seed(0)
    return init_model(str(path), device='cpu')


@pytest.mark.parametrize('size', [(4, 4), (1, 64), (64, 7)])
def test_too_small_video_is_a_clear_error(tiny_model, size):
    from soc_mm.apis import inference_rvos
    video = np.zeros((1, *size, 3), np.uint8)
    with pytest.raises(ValueError, match=re.escape(f"the video's frames are {size[0]}x{size[1]} pixels (H x W); "
                                                   'the model needs frames of at least 8x8 pixels')):
        inference_rvos(tiny_model, video, ['the red circle'])


def test_smallest_accepted_frame_runs(tiny_model):
    from soc_mm.apis import inference_rvos
    video = np.random.default_rng(0).integers(0, 255, (1, MIN_FRAME_SIZE, MIN_FRAME_SIZE, 3), dtype=np.uint8)
    result = inference_rvos(tiny_model, video, ['the red circle'])[0]
    assert result.pred_masks.shape == (1, MIN_FRAME_SIZE, MIN_FRAME_SIZE)
    assert torch.isfinite(result.pred_scores).all()
