"""BatchRegroupSOC (soc_mm/official/batch_regroup_soc.py): the official VOC batch regrouping, only where the
golden comparison asks for it; SOC clusters each video on its own."""
import os.path as osp

import torch

from conftest import FIXTURE_ROOT, MAIN_VARIANT, load_fixture, run_python
import soc_mm  # noqa: F401  (shims + registries)
from soc_mm.models.detectors import SOC
from soc_mm.official import BatchRegroupSOC
from soc_mm.official.reference import build_reference_model, fixture_batch


def test_regroup_reproduces_the_official_video_queries_and_soc_clusters_per_video():
    """The main fixture (B=2, T=3): the harness builds BatchRegroupSOC by default, which gives the official
    VOC output; SOC's video queries of the batch equal those of each video alone, and differ from the
    official ones (docs/official_parity.md, the VOC regrouping row)."""
    torch.set_num_threads(1)
    fixture = osp.join(FIXTURE_ROOT, MAIN_VARIANT)
    inputs, samples = fixture_batch(load_fixture(MAIN_VARIANT, 'inputs.pt'))
    ref = load_fixture(MAIN_VARIANT, 'intermediates_eval.pt')['voc']['voc_hs']
    regrouped, per_video = build_reference_model(fixture)[0].eval(), build_reference_model(fixture, False)[0].eval()
    assert type(regrouped) is BatchRegroupSOC and type(per_video) is SOC
    with torch.no_grad():
        official = regrouped(inputs, samples, mode='tensor')['video_queries']
        voc = per_video(inputs, samples, mode='tensor')['video_queries']
        alone = [per_video(inputs[b:b + 1], samples[b:b + 1], mode='tensor')['video_queries'] for b in range(2)]
    torch.testing.assert_close(official[0], ref[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(voc, torch.cat(alone, 1), rtol=0, atol=1e-4)
    assert (voc - ref).abs().max() > 1e-2


def test_regroup_of_frame_sequences():
    """[L, B, T, ...] frames -> the official [L, T, B] memory read as [L, B, T]: video 0's sequence is
    (video 0 frame 0, video 1 frame 0, video 0 frame 1, ...) for B=2."""
    L, B, T = 1, 2, 3
    frames = torch.arange(L * B * T, dtype=torch.float32).view(L, B, T, 1, 1)  # value = b * T + t
    regrouped = BatchRegroupSOC.group_frames_by_video(None, frames)
    assert regrouped.flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert torch.equal(SOC.group_frames_by_video(None, frames), frames)


def test_library_does_not_register_it():
    """``import soc_mm`` leaves BatchRegroupSOC out of the registry (soc_mm.official registers it)."""
    code = ('import sys, soc_mm; from soc_mm.registry import MODELS; '
            "assert 'soc_mm.official' not in sys.modules, 'soc_mm imports soc_mm.official'; "
            "assert 'BatchRegroupSOC' not in MODELS.module_dict; "
            "import soc_mm.official; assert 'BatchRegroupSOC' in MODELS.module_dict")
    run_python(code)
