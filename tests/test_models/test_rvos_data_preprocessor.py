"""RVOSDataPreprocessor (soc_mm/models/data_preprocessors/rvos_data_preprocessor.py): clips normalised,
then padded; frames of one clip must share a size."""
import pytest
import torch

import soc_mm  # noqa: F401  (shims + registries)


def test_clip_with_frames_of_different_sizes_is_rejected():
    from soc_mm.models.data_preprocessors import RVOSDataPreprocessor
    pre = RVOSDataPreprocessor()
    frames = [torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(3, 32, 40, dtype=torch.uint8)]
    with pytest.raises(ValueError, match='frames of a clip must share one size'):
        pre(dict(inputs=[frames]))


def test_preprocessor_normalises_and_pads_after_normalisation():
    from soc_mm.models.data_preprocessors import RVOSDataPreprocessor
    from soc_mm.structures import RVOSDataSample
    pre = RVOSDataPreprocessor(pad_size_divisor=32)
    a = torch.full((2, 3, 40, 50), 255, dtype=torch.uint8)
    a[:, 0] = 0  # B channel 0 -> after BGR->RGB it is the last channel
    b = torch.zeros((2, 3, 30, 70), dtype=torch.uint8)
    samples = [RVOSDataSample(metainfo=dict(img_shape=(40, 50))), RVOSDataSample(metainfo=dict(img_shape=(30, 70)))]
    out = pre(dict(inputs=[a, b], data_samples=samples))
    x = out['inputs']
    assert x.shape == (2, 2, 3, 64, 96)
    torch.testing.assert_close(x[0, 0, 0, 0, 0], torch.tensor((255 - 123.675) / 58.395))
    torch.testing.assert_close(x[0, 0, 2, 0, 0], torch.tensor((0 - 103.53) / 57.375))
    assert (x[0, :, :, 40:] == 0).all() and (x[0, :, :, :, 50:] == 0).all()
    assert out['data_samples'][1].batch_input_shape == (64, 96)
