"""SOC++ through the user-facing entry points with a config unchanged: ``inference_rvos`` (equal to the
model's own ``predict``; expressions batched in one forward equal each one alone), the
web demo (one request through its HTTP API, a server in a subprocess) and
``tools/analysis_tools/benchmark.py`` on the SOC++ Swin-T base config (a subprocess, tiny input sizes).
Tiny random-weight SOC++ (configs/soc_plus_plus/socpp_tiny_synthetic.py) with the fixture text encoder."""
import io
import json
import os.path as osp
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, TEXT_ENCODER_DIR, subprocess_env
from test_inference_api import EXPRESSIONS, assert_same_results, smooth_video

SOCPP_TINY = osp.join(REPO_ROOT, 'configs', 'soc_plus_plus', 'socpp_tiny_synthetic.py')
SOCPP_BASE = osp.join(REPO_ROOT, 'configs', 'soc_plus_plus', '_base_', 'socpp_swin-t.py')


@pytest.fixture(scope='module')
def socpp_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('socpp_cfg') / 'tiny_socpp.py'
    path.write_text(f"_base_ = [{SOCPP_TINY!r}]\nmodel = dict(text_encoder=dict(model_path={TEXT_ENCODER_DIR!r}))\n")
    return str(path)


@pytest.fixture(scope='module')
def socpp_model(socpp_config):
    from soc_mm.apis import init_model
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return init_model(socpp_config, device='cpu')


def test_socpp_model_is_built_as_configured(socpp_model):
    from soc_mm.models.detectors import SOCPlusPlus
    from soc_mm.models.layers.frame_scored_voc import FrameScoredVOC
    assert isinstance(socpp_model, SOCPlusPlus) and isinstance(socpp_model.voc, FrameScoredVOC)
    assert not socpp_model.training
    # SOC++'s test set-up: the last decoder layer, one object per expression
    assert socpp_model.output_layer == socpp_model.decoder.num_layers - 1
    assert socpp_model.test_options.object_selection == 'top1'


def test_inference_rvos_equals_predict(socpp_model):
    """A video that fits in one clip: ``inference_rvos`` gives an expression the masks and scores of
    ``model.predict`` on the same clip (one expression per forward: what the official evaluation runs)."""
    from soc_mm.apis import inference_rvos, prepare_clip
    video = smooth_video(4)
    frames = [f[..., ::-1] for f in video]  # prepare_clip takes BGR frames
    results = []
    for expr in EXPRESSIONS:
        res = inference_rvos(socpp_model, video, [expr])
        assert len(res) == 1 and res[0].expression == expr
        inputs, samples = prepare_clip(socpp_model, frames, [expr])
        with torch.no_grad():
            ref = socpp_model.predict(inputs, samples)[0]
        assert ref.pred_masks.shape == res[0].pred_masks.shape == (4, 48, 64)
        assert torch.equal(ref.pred_masks, res[0].pred_masks), expr
        assert torch.allclose(ref.pred_scores, res[0].pred_scores, rtol=0, atol=1e-6), expr
        results.append(res[0])
    # the expression reaches the result: different texts, different scores
    assert not torch.allclose(results[0].pred_scores, results[1].pred_scores)
    # several expressions: the shared clip features (share_clips) change nothing
    assert_same_results(inference_rvos(socpp_model, video, EXPRESSIONS),
                        inference_rvos(socpp_model, video, EXPRESSIONS, share_clips=False))


def test_inference_rvos_batched_expressions_equal_one_at_a_time(socpp_model):
    """K expressions on one clip (through the text-dependent stages together) give each expression
    what it gets alone. Scores compared relatively (rtol 2e-6; float rounding alone: < 5e-7 here)."""
    from soc_mm.apis import inference_rvos
    video = smooth_video(4)
    together = inference_rvos(socpp_model, video, EXPRESSIONS)
    for k, expr in enumerate(EXPRESSIONS):
        alone = inference_rvos(socpp_model, video, [expr])[0]
        assert torch.equal(together[k].pred_masks, alone.pred_masks), expr
        assert torch.allclose(together[k].pred_scores, alone.pred_scores, rtol=2e-6, atol=0), expr


def test_inference_rvos_long_video_equals_separate_clips(socpp_model):
    """Clips are independent in SOC++ too (the frame scores and the random walk are per clip)."""
    from soc_mm.apis import inference_rvos
    clip_len = 3
    video = smooth_video(2 * clip_len)
    whole = inference_rvos(socpp_model, video, EXPRESSIONS[:2], clip_len=clip_len)
    parts = [inference_rvos(socpp_model, video[t:t + clip_len], EXPRESSIONS[:2], clip_len=clip_len)
             for t in range(0, 2 * clip_len, clip_len)]
    for k in range(2):
        assert torch.equal(whole[k].pred_masks, torch.cat([p[k].pred_masks for p in parts]))
        assert torch.allclose(whole[k].pred_scores, torch.cat([p[k].pred_scores for p in parts]), atol=1e-6)


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format='PNG')
    return buf.getvalue()


def test_web_demo_serves_socpp(socpp_config, socpp_model, tmp_path):
    """``tools/demo/web_demo.py --config <SOC++ config>``: one request (a zip of PNG frames, so the
    server decodes exactly these pixels) through the HTTP API; its masks are ``inference_rvos``'s on
    the same clips with the same weights."""
    pytest.importorskip('gradio_client')
    from gradio_client import Client, handle_file
    from soc_mm.apis import inference_rvos
    from soc_mm.structures.mask import decode_mask
    from web_demo_server import WebDemoServer, synthetic_video

    checkpoint = str(tmp_path / 'tiny_socpp.pth')
    torch.save(dict(state_dict=socpp_model.state_dict(), meta=dict()), checkpoint)
    frames = synthetic_video(str(tmp_path / 'shapes.mp4'), num_frames=5, size=(64, 96))  # RGB [5, 64, 96, 3]
    zip_path = tmp_path / 'shapes.zip'
    with zipfile.ZipFile(zip_path, 'w') as archive:
        for t, frame in enumerate(frames):
            archive.writestr(f'{t:05d}.png', png_bytes(frame))
    expressions = ['the red circle', 'the square on the left']

    # the server's own tiny SOC is replaced: the later --config / --checkpoint win
    server = WebDemoServer(str(tmp_path), ['--config', socpp_config, '--checkpoint', checkpoint])
    try:
        client = Client(server.url, verbose=False, download_files=str(tmp_path / 'downloads'))
        status, _video, _plot, _key_frames, downloads = client.predict(
            handle_file(str(zip_path)), '(none: use the uploaded video)', '\n'.join(expressions), 3, 0,
            'top-1: one object per expression', 0.5, api_name='/segment')
    finally:
        server.stop()
    assert status.startswith('**shapes.zip**: 5 frames (96x64) x 2 expression(s) in 2 clip(s) of up to 3 frames'), \
        status
    files = {osp.basename(p): p for p in downloads}
    with open(files['shapes_masks_rle.json']) as f:
        rle = json.load(f)
    assert [e['expression'] for e in rle['expressions']] == expressions
    served = [np.stack([decode_mask(r) for r in e['masks']]) for e in rle['expressions']]

    options = socpp_model.test_options.replace(object_selection='top1', score_thr=None, allow_no_target=False)
    local = inference_rvos(socpp_model, frames, expressions, clip_len=3, test_options=options)
    for k in range(len(expressions)):
        assert served[k].shape == (5, 64, 96)
        assert np.array_equal(served[k], local[k].pred_masks.numpy()), expressions[k]
        assert np.allclose(rle['expressions'][k]['scores'], local[k].pred_scores.numpy(), atol=1e-4)


def test_benchmark_stage_flops_cover_socpp_modules(socpp_model):
    """Every sub-module of SOC++ that computes is in one of the benchmark's stages (the proxies'
    attention in fusion+encoder, the query fusion in decoder+VOC): the stages add up to the FLOPs of
    all sub-modules of the same forward."""
    from mmengine.analysis import FlopAnalyzer
    from soc_mm.structures.batch_metainfo import img_shapes_tensor
    from soc_mm.testing import synthetic_expression_batch
    from soc_mm.testing.benchmark import kernels, shared_head_inputs, stage_flops
    inputs, samples = synthetic_expression_batch(socpp_model, 2, (64, 64), 1)
    stages = stage_flops(socpp_model, inputs, samples)

    class Forward(torch.nn.Module):  # the forward stage_flops analyses: transformer, then the head
        def __init__(self, soc):
            super().__init__()
            self.soc = soc

        def forward(self, x):
            h = shared_head_inputs(self.soc, x, samples)
            layer = self.soc.output_layer
            return self.soc.bbox_head.forward_single(h['hidden_states'][layer], h['references'][layer],
                                                     h['references'][layer + 1][..., :2], h['mask_feats'],
                                                     img_shapes_tensor(samples, x.device), layer)

    with kernels(socpp_model, fast=False):
        analyzer = FlopAnalyzer(Forward(socpp_model), (inputs, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        with torch.no_grad():
            by_module = analyzer.by_module()
    children = {name: 2 * by_module.get(f'soc.{name}', 0) for name, _ in socpp_model.named_children()}
    assert children['proxy_fusion'] > 0 and children['query_fusion'] > 0
    assert sum(stages.values()) == sum(children.values())


def test_benchmark_runs_on_the_socpp_base_config():
    """benchmark.py on the SOC++ Swin-T config (random weights, fixture text encoder, 2 frames 64x64):
    exit 0 and its tables, naming SOC++."""
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark.py'), SOCPP_BASE,
         '--cfg-options', 'model.backbone.init_cfg=None', f'model.text_encoder.model_path={TEXT_ENCODER_DIR}',
         '--frames', '2', '--size', '64', '64', '--expressions', '2', '--threads', '1', '--schedules', '1', '2'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=subprocess_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert 'SOC++ inference, 2 frames at 64x64, threads 1' in out
    assert '| soc_mm, reference kernels (model.fast_kernels=False) |' in out
    assert '| soc_mm, default (fused kernels) |' in out and '| soc_mm: 2 forwards, fused kernels |' in out
    assert '| soc_mm: backbone once, text stages 1 expression(s) at a time' in out
    assert '| soc_mm: backbone once, text stages 2 expression(s) at a time' in out
    for stage in ('backbone', 'neck', 'text', 'fusion+encoder', 'decoder+VOC', 'heads', 'post-processing'):
        assert re.search(rf'^\| {re.escape(stage)} \| [0-9.]+ \| [0-9]+ % \| [0-9.]+ \|', out, re.M), stage
    for stage in ('backbone', 'fusion+encoder', 'decoder+VOC'):  # Swin-T sized: FLOPs counted
        assert float(re.search(rf'^\| {re.escape(stage)} \| [0-9.]+ \| [0-9]+ % \| ([0-9.]+) \|', out, re.M)
                     .group(1)) > 0, stage
    # printed, not bounded: batched expressions differ in SOC++ (the xfail test above)
    assert re.search(r'max \|diff\| shared vs per-expression hidden states \(head input\): [0-9.e+-]+', out)
