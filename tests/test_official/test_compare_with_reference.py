"""The converter + model reproduce every golden fixture of the official model."""
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import FIXTURE_ROOT, REPO_ROOT, subprocess_env

FIXTURE_DIRS = sorted(d for d in glob.glob(osp.join(FIXTURE_ROOT, '*'))
                      if osp.isfile(osp.join(d, 'config.json')))


def test_fixture_folders_present():
    assert len(FIXTURE_DIRS) == 5


def test_compare_with_reference_tool_passes_on_every_fixture():
    tool = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'compare_with_reference.py')
    proc = subprocess.run([sys.executable, tool, *FIXTURE_DIRS], capture_output=True, text=True,
                          env=subprocess_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for d in FIXTURE_DIRS:  # the fused (default) and the reference kernels
        assert f'== {d} (fast kernels)' in proc.stdout and f'== {d} (reference kernels)' in proc.stdout
    assert 'matcher_indices.final' in proc.stdout and 'all quantities within tolerance' in proc.stdout


def test_compare_detects_a_wrong_weight(tmp_path):
    """The comparison can fail: perturb one official tensor and it must report it."""
    import shutil

    import soc_mm  # noqa: F401
    from soc_mm.official.reference import compare_fixture
    torch.set_num_threads(1)
    src = osp.join(FIXTURE_ROOT, 'ytvos_b1_t10_nc1_w2')
    dst = tmp_path / 'variant'
    shutil.copytree(src, dst)
    common = tmp_path / 'common'
    shutil.copytree(osp.join(FIXTURE_ROOT, 'common', 'text_encoder'), common / 'text_encoder')
    sd = torch.load(osp.join(FIXTURE_ROOT, 'common', 'official_state_dict.pt'))
    sd['voc.decoder_norm.weight'] = sd['voc.decoder_norm.weight'] + 0.5
    torch.save(sd, common / 'official_state_dict.pt')
    rows = {r.name: r for r in compare_fixture(str(dst))}
    assert not rows['eval.pred_cls'].ok and not rows['eval.pred_logit'].ok
    assert rows['eval.text_sentence_feature'].ok  # upstream of the VOC: unaffected


def test_converter_rejects_unknown_and_missing_keys_and_accepts_known_extras():
    import soc_mm  # noqa: F401
    from soc_mm.official.checkpoint import OfficialCheckpointError, convert_official_state_dict
    sd = torch.load(osp.join(FIXTURE_ROOT, 'common', 'official_state_dict.pt'))
    converted = convert_official_state_dict(sd)
    assert len(converted) == len(sd) - 12  # transformer.decoder.bbox_embed.* duplicates dropped

    # released checkpoints (transformers 4.24) carry position_ids: accepted by name
    extra = dict(sd, **{'text_encoder.embeddings.position_ids': torch.arange(64)[None]})
    assert convert_official_state_dict(extra).keys() == converted.keys()

    with pytest.raises(OfficialCheckpointError, match=r'1 unknown key\(s\) .*: foo\.bar'):
        convert_official_state_dict(dict(sd, **{'foo.bar': torch.zeros(1)}))
    with pytest.raises(OfficialCheckpointError, match=r'unknown key.*voc\.layers\.0\.weight'):
        convert_official_state_dict(dict(sd, **{'voc.layers.0.weight': torch.zeros(1)}))
    without_voc = {k: v for k, v in sd.items() if not k.startswith('voc.')}
    with pytest.raises(OfficialCheckpointError, match=r'missing key\(s\):.* voc\.enc_self_attn\.<i>\.\*'):
        convert_official_state_dict(without_voc)


def test_converter_tool_writes_a_loadable_checkpoint(tmp_path):
    sd = torch.load(osp.join(FIXTURE_ROOT, 'common', 'official_state_dict.pt'))
    src = tmp_path / 'official.pth.tar'
    torch.save(dict(epoch=3, model_state_dict=sd, optimizer_state_dict={}), src)
    dst = tmp_path / 'ours.pth'
    tool = osp.join(REPO_ROOT, 'tools', 'model_converters', 'soc_official_to_mm.py')
    proc = subprocess.run([sys.executable, tool, str(src), str(dst)], capture_output=True,
                          text=True, env=subprocess_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(dst, weights_only=True)
    assert 'voc.decoder_norm.weight' in ckpt['state_dict']
    torch.testing.assert_close(ckpt['state_dict']['query_embedding.weight'], sd['query_embed.weight'])
