"""The synthetic dataset generator (soc_mm/datasets/synthetic.py, tools/dataset_converters/
generate_synthetic_rvos.py); MeViS's generator: test_mevis_dataset.py."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

import soc_mm  # noqa: F401
from soc_mm.datasets import synthetic
from synthetic_datasets import YTVOS_TRAIN, build, small_ytvos

init_default_scope('soc_mm')


def test_generator_cli_writes_loadable_dataset(tmp_path, repo_root):
    import subprocess
    import sys

    from conftest import subprocess_env
    out = str(tmp_path / 'cli_ytvos')
    subprocess.run([sys.executable, osp.join(repo_root, 'tools', 'dataset_converters', 'generate_synthetic_rvos.py'),
                    'ref_youtube_vos', out, '--num-train', '2', '--num-valid', '1', '--num-frames', '4',
                    '--size', '32', '48'], check=True, env=subprocess_env(), capture_output=True)
    ds = build(dict(type='RefYouTubeVOSDataset', data_root=out, num_frames=4, pipeline=YTVOS_TRAIN))
    manifest = json.load(open(osp.join(out, 'synthetic_manifest.json')))
    assert len(ds) == sum(len(v['expressions']) for v in manifest['train'].values())
    assert ds[0]['inputs'].shape == (4, 3, 32, 48)
    # a count the loaders refuse (synthetic.check_generate_options) is a usage error, nothing written
    refused = str(tmp_path / 'refused')
    proc = subprocess.run([sys.executable, osp.join(repo_root, 'tools', 'dataset_converters',
                                                    'generate_synthetic_rvos.py'), 'a2d_sentences', refused,
                           '--num-valid', '0'], env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert 'generate_synthetic_rvos.py: error: --num-valid 0: must be >= 1 for a2d_sentences' in proc.stderr
    assert not osp.exists(refused)


def _shares_color(video):
    colors = [o['color'] for o in video['objects'].values()]
    return len(set(colors)) < len(colors)


def test_generator_same_color_train_videos(tmp_path):
    """train_same_color_prob controls how often only the shape tells two train objects apart, and the
    held-out videos (their own random stream) do not change with it."""
    rng = np.random.default_rng(0)
    for n in (2, 3):
        picks = [synthetic.pick_color_shapes(rng, n, same_color_prob=0.0) for _ in range(200)]
        assert all(len(set(picks_i)) == n and len({c for c, _ in picks_i}) == n for picks_i in picks)
        picks = [synthetic.pick_color_shapes(rng, n, same_color_prob=1.0) for _ in range(200)]
        assert all(len(set(p)) == n and len({c for c, _ in p}) == n - 1 for p in picks)
    with pytest.raises(ValueError, match='same_color_prob'):
        synthetic.pick_color_shapes(rng, 2, same_color_prob=1.5)

    kw = dict(num_train=60, num_valid=20, num_test=0, num_frames=2, size=(24, 24), seed=5)
    _, uniform = small_ytvos(tmp_path / 'a', **kw)
    _, forced = small_ytvos(tmp_path / 'b', train_same_color_prob=0.8, **kw)
    rate = lambda split: np.mean([_shares_color(v) for v in split.values()])  # noqa: E731
    assert rate(uniform['train']) < 0.4 and rate(forced['train']) > 0.6
    assert forced['valid'] == uniform['valid']
    assert forced['train_same_color_prob'] == 0.8 and uniform['train_same_color_prob'] is None
