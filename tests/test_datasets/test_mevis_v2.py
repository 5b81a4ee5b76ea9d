"""MeViS v2 (TPAMI 2025) data: the release is read from ``meta_expressions_v2.json`` (detected in the split
folder, or named), v1 and v2 load the same way, a folder holding both needs the release named, the audio of
v2 expressions is ignored; the synthetic v2 writer adds no-target and multi-object expressions and audio."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from soc_mm.datasets import MeViSDataset
from soc_mm.datasets.mevis import MEVIS_META_FILES, resolve_mevis_meta_file
from soc_mm.datasets.synthetic import generate_mevis
from soc_mm.datasets.synthetic_mevis_v2 import V2_KINDS, generate_mevis_v2


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp('mevis')
    v1, v2 = str(base / 'v1'), str(base / 'v2')
    kwargs = dict(num_train=3, num_valid_u=2, num_valid=2, num_frames=5, size=(24, 32), seed=7)
    return dict(v1=v1, v2=v2, m1=generate_mevis(v1, **kwargs), m2=generate_mevis_v2(v2, **kwargs))


def _expressions(manifest, split):
    return [e for v in manifest[split].values() for e in v['expressions'].values()]


def test_v2_writer_adds_no_target_multi_object_and_audio(roots):
    for split in ('train', 'valid_u', 'valid'):
        folder = osp.join(roots['v2'], split)
        assert sorted(f for f in os.listdir(folder) if f.endswith('.json')) == (
            ['mask_dict.json', 'meta_expressions_v2.json'] if split != 'valid' else ['meta_expressions_v2.json'])
        v1, v2 = _expressions(roots['m1'], split), _expressions(roots['m2'], split)
        assert len(v2) > len(v1)
        assert sum(e['no_target'] for e in v2) >= sum(e['no_target'] for e in v1) + len(roots['m2'][split])
        assert sum(e['multi_object'] for e in v2) > sum(e['multi_object'] for e in v1)
        assert {e['kind'] for e in v2} >= {'all_objects', 'no_target_color'} and set(V2_KINDS) >= \
            {e['kind'] for e in v2} - {e['kind'] for e in v1}
        meta = json.load(open(osp.join(folder, 'meta_expressions_v2.json')))['videos']
        for video_id, video in meta.items():
            for exp_id, exp in video['expressions'].items():
                assert exp['audio'] == f'audio/{video_id}/{exp_id}.wav'
                assert osp.getsize(osp.join(folder, exp['audio'])) > 44  # a WAV with samples
                assert ('anno_id' in exp) == (split != 'valid')
    # v1's frames and masks are the ones v2 starts from (same seed): v2 only adds expressions
    assert json.load(open(osp.join(roots['v1'], 'valid_u', 'mask_dict.json'))) == \
        json.load(open(osp.join(roots['v2'], 'valid_u', 'mask_dict.json')))


def test_both_releases_load_and_the_audio_is_ignored(roots):
    for version, root in (('v1', roots['v1']), ('v2', roots['v2'])):
        for split in ('train', 'valid_u', 'valid'):
            ds = MeViSDataset(data_root=root, split=split, num_frames=3, pipeline=[])
            assert ds.version == version and ds.meta_file.endswith(MEVIS_META_FILES[version])
            info = ds.get_data_info(0)
            assert info['mevis_version'] == version and 'audio' not in info
        valid_u = MeViSDataset(data_root=root, split='valid_u', pipeline=[])
        meta = json.load(open(valid_u.meta_file))['videos']
        assert len(valid_u) == sum(len(v['expressions']) for v in meta.values())
        no_target = [i for i in range(len(valid_u)) if valid_u.get_data_info(i)['anno_ids'] == []]
        assert len(no_target) == sum(not e['anno_id'] for v in meta.values() for e in v['expressions'].values())
        sample = valid_u.prepare_data(no_target[0])
        assert sample['mask_rles'] == [] and sample['ref_inst_idx'] == []


def test_release_detection_and_errors(roots, tmp_path):
    root = str(tmp_path / 'both')
    shutil.copytree(roots['v2'], root)
    split = osp.join(root, 'valid_u')
    shutil.copy(osp.join(roots['v1'], 'valid_u', 'meta_expressions.json'), split)
    with pytest.raises(ValueError, match=r"holds both meta_expressions.json \(MeViS v1\) and "
                                         r"meta_expressions_v2.json \(MeViS v2\): name the release"):
        MeViSDataset(data_root=root, split='valid_u', pipeline=[])
    for version in ('v1', 'v2'):
        ds = MeViSDataset(data_root=root, split='valid_u', version=version, pipeline=[])
        assert ds.meta_file == osp.join(split, MEVIS_META_FILES[version]) and ds.version == version
    with pytest.raises(ValueError, match=r"version must be one of \('v1', 'v2'\)"):
        MeViSDataset(data_root=root, split='valid_u', version='v3', pipeline=[])
    with pytest.raises(FileNotFoundError, match=r'MeViS v1: .*valid/meta_expressions.json not found \(the folder '
                                                r'has the v2 file\)'):
        MeViSDataset(data_root=roots['v2'], split='valid', version='v1', pipeline=[])
    os.remove(osp.join(split, 'meta_expressions.json'))
    os.remove(osp.join(split, 'meta_expressions_v2.json'))
    with pytest.raises(FileNotFoundError, match=r'no MeViS expression file in .*valid_u: expected '
                                                r'meta_expressions.json \(v1\) or meta_expressions_v2.json \(v2\)'):
        MeViSDataset(data_root=root, split='valid_u', pipeline=[])
    # a renamed expression file, named explicitly
    shutil.copy(osp.join(roots['v2'], 'valid_u', 'meta_expressions_v2.json'), osp.join(split, 'mine.json'))
    ds = MeViSDataset(data_root=root, split='valid_u', meta_file_name='mine.json', version='v2', pipeline=[])
    assert len(ds) > 0 and ds.version == 'v2'
    assert resolve_mevis_meta_file(osp.join(split, 'mine.json')) == (osp.join(split, 'mine.json'), None)
    assert resolve_mevis_meta_file(osp.join(roots['v2'], 'valid_u', 'meta_expressions_v2.json'))[1] == 'v2'


def test_generator_cli_writes_mevis_v2(tmp_path):
    out = str(tmp_path / 'gen')
    run = subprocess.run([sys.executable, 'tools/dataset_converters/generate_synthetic_rvos.py', 'mevis_v2', out,
                          '--num-train', '1', '--num-valid-u', '1', '--num-valid', '0', '--num-frames', '3',
                          '--size', '16', '16'], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "{'train': 1, 'valid_u': 1, 'valid': 0}" in run.stdout
    assert json.load(open(osp.join(out, 'synthetic_manifest.json')))['format'] == 'mevis_v2'
    assert MeViSDataset(data_root=out, split='valid_u', pipeline=[]).version == 'v2'
