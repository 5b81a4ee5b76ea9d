"""soc_mm.apis.deployment: the tiny SOC exported to ONNX runs in ONNX Runtime with the outputs of eager
PyTorch (within 1e-4 of the largest |value|), its dynamic axes (expressions, tokens, padded frames)
hold, and the ONNX Runtime inference (ONNXRuntimeSOC, RVOSInferencer(backend='onnxruntime')) gives
inference_rvos's results; export_onnx.py's argument errors."""
import os.path as osp
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, TEXT_ENCODER_DIR, TINY_CONFIG, subprocess_env

pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

NUM_FRAMES, SIZE = 3, (48, 64)
EXPRESSIONS = ['the red circle on the left', 'a blue square']
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """(model, graph file) of the tiny SOC (random weights), exported once for clips of 3 frames at 48x64."""
    from soc_mm.apis import init_model
    from soc_mm.apis.deployment import export_onnx
    torch.manual_seed(0)
    model = init_model(TINY_CONFIG, cfg_options={'model.text_encoder.model_path': TEXT_ENCODER_DIR})
    path = str(tmp_path_factory.mktemp('onnx') / 'tiny.onnx')
    meta = export_onnx(model, path, num_frames=NUM_FRAMES, size=SIZE)
    assert (meta['num_frames'], meta['height'], meta['width']) == (NUM_FRAMES, *SIZE)
    assert not model.training  # the export leaves the model in eval mode
    return model, path


def moving_blobs(num_frames, size=SIZE):
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.zeros((num_frames, h, w, 3), np.uint8)
    for t in range(num_frames):
        frames[t, ..., 0] = 255 * ((xx - 10 - 3 * t) ** 2 + (yy - 20) ** 2 < 80)
        frames[t, ..., 2] = 255 * ((xx - 40 + 2 * t) ** 2 + (yy - 30) ** 2 < 60)
        frames[t, ..., 1] = 20
    return frames


def test_graph_outputs_equal_eager_pytorch(exported):
    from soc_mm.apis.deployment import example_inputs, verify_onnx
    model, path = exported
    # the tracing inputs, against the exported kernels and against the default (fused) kernels
    for kernels in ('export', 'default'):
        diffs = verify_onnx(model, path, kernels=kernels)
        assert set(diffs) == {'cls_logits', 'mask_logits'}
        assert max(diffs.values()) < TOLERANCE, (kernels, diffs)
    # other inputs: another number of expressions and tokens (dynamic axes), frames padded (img_shape
    # smaller than the graph's size), other pixel values
    frames, _, _, _ = example_inputs(model, NUM_FRAMES, SIZE)
    frames = torch.randn_like(frames, generator=torch.Generator().manual_seed(1))
    frames[..., 40:, :] = 0
    frames[..., 50:] = 0
    tokens = model.text_encoder.tokenize(['a', 'the big blue square that moves to the right of the frame', 'cat'])
    inputs = (frames, torch.tensor([40, 50]), tokens['input_ids'], tokens['attention_mask'])
    diffs = verify_onnx(model, path, inputs=inputs, kernels='default')
    assert max(diffs.values()) < TOLERANCE, diffs
    # the difference is measured, not assumed: another model's outputs are far away
    from soc_mm.apis.deployment import eager_outputs, relative_difference
    other = [x + 0.01 * x.abs().max() for x in eager_outputs(model, inputs)]
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    outputs = session.run(None, {n: x.numpy() for n, x in zip(('frames', 'img_shape', 'input_ids',
                                                               'attention_mask'), inputs)})
    assert outputs[0].shape == (3, NUM_FRAMES, 5, 1) and outputs[1].shape == (3, NUM_FRAMES, 5, 12, 16)
    assert relative_difference(other[1], outputs[1]) > 5e-3


def test_onnxruntime_inference_equals_inference_rvos(exported):
    from soc_mm.apis import inference_rvos
    from soc_mm.apis.deployment import ONNXRuntimeSOC
    model, path = exported
    runtime = ONNXRuntimeSOC(path, num_threads=1)  # the config stored in the graph
    assert (runtime.num_frames, runtime.height, runtime.width) == (NUM_FRAMES, *SIZE)
    video = moving_blobs(2 * NUM_FRAMES)
    done = []
    results = runtime.inference(video, EXPRESSIONS, progress=done.append)
    reference = inference_rvos(model, video, EXPRESSIONS, clip_len=NUM_FRAMES)
    assert done == [1, 2]
    for a, b in zip(results, reference):
        assert a.expression == b.expression and a.num_frames == b.num_frames and a.ori_shape == b.ori_shape
        assert torch.equal(a.pred_masks, b.pred_masks)
        assert torch.allclose(a.pred_scores, b.pred_scores, atol=1e-4)
    # a last clip of 1 frame runs on the last 3 frames; the first 6 frames are those of above
    longer = runtime.inference(np.concatenate([video, video[-1:]]), EXPRESSIONS)
    assert longer[0].pred_masks.shape == (7, *SIZE) and longer[0].num_frames == 7
    assert torch.equal(longer[0].pred_masks[:6], results[0].pred_masks)
    # smaller frames are padded to the graph's size: the eager model on the same padded clip
    small = runtime.inference(video[:NUM_FRAMES, :40, :50], EXPRESSIONS[:1])
    assert small[0].pred_masks.shape == (NUM_FRAMES, 40, 50)
    with pytest.raises(ValueError, match=r'the video has 2 frames, the graph takes clips of 3 frames'):
        runtime.inference(video[:2], EXPRESSIONS)
    big = np.zeros((NUM_FRAMES, 50, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r'the frames are 50x64 .*larger than the 48x64 the graph takes'):
        runtime.inference(big, EXPRESSIONS)
    with pytest.raises(ValueError, match=r'the graph takes clips \[1, 3, 3, 48, 64\]'):
        runtime.run(np.zeros((1, 2, 3, 48, 64), np.float32), (48, 64), *runtime.tokenize(['x']).values())


def test_inferencer_with_the_onnxruntime_backend(exported, tmp_path):
    from soc_mm.apis import RVOSInferencer
    from soc_mm.apis.deployment import ONNXRuntimeSOC
    _, path = exported
    inferencer = RVOSInferencer(weights=path, backend='onnxruntime', num_threads=1, show_progress=False)
    video = moving_blobs(2 * NUM_FRAMES)
    result = inferencer(video, EXPRESSIONS, return_datasamples=True, out_dir=str(tmp_path))
    reference = ONNXRuntimeSOC(path).inference(video, EXPRESSIONS)
    for a, b in zip(result['predictions'], reference):
        assert torch.equal(a.pred_masks, b.pred_masks) and torch.equal(a.pred_scores, b.pred_scores)
    assert osp.isfile(tmp_path / 'vis' / 'video.mp4')
    assert osp.isfile(tmp_path / 'preds' / 'Annotations' / 'video' / '1' / '00005.png')
    with pytest.raises(ValueError, match=r'the ONNX graph takes clips of 3 frames .*got clip_len=4'):
        inferencer(video, EXPRESSIONS, clip_len=4)
    with pytest.raises(ValueError, match='share_clips=False is not available'):
        inferencer(video, EXPRESSIONS, share_clips=False)
    with pytest.raises(ValueError, match='link_clips is not available with the ONNX graph'):
        inferencer(video, EXPRESSIONS, link_clips=True)


def test_graph_metadata_is_required(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    from soc_mm.apis.deployment import read_metadata
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g',
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / 'other.onnx'))
    with pytest.raises(ValueError, match=r"other.onnx: no 'soc_mm' metadata: not a graph written by"):
        read_metadata(str(tmp_path / 'other.onnx'))
    with pytest.raises(FileNotFoundError, match='ONNX file not found'):
        read_metadata(str(tmp_path / 'missing.onnx'))


def test_export_tool_refuses_bad_arguments(tmp_path):
    script = osp.join(REPO_ROOT, 'tools', 'deployment', 'export_onnx.py')
    for args, message in (([TINY_CONFIG, 'none', str(tmp_path / 'out.txt')], 'out must end with .onnx'),
                          ([str(tmp_path / 'no.py'), 'none', str(tmp_path / 'o.onnx')], 'config file not found'),
                          ([TINY_CONFIG, str(tmp_path / 'no.pth'), str(tmp_path / 'o.onnx')],
                           'checkpoint file not found')):
        with warnings.catch_warnings():
            proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300,
                                  env=subprocess_env(), cwd=REPO_ROOT)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]


def test_a_head_variants_frame_outputs_are_in_the_graph(tmp_path):
    """PresenceSOCHead's presence is a third output of the graph (within the tolerance of eager PyTorch), and
    ONNXRuntimeSOC thresholds it with presence_thr as inference_rvos does; a config whose head post-processes other
    outputs than the graph gives is refused."""
    from soc_mm.apis import inference_rvos, init_model
    from soc_mm.apis.deployment import ONNXRuntimeSOC, export_onnx, verify_onnx
    torch.manual_seed(0)
    model = init_model(TINY_CONFIG, cfg_options={'model.text_encoder.model_path': TEXT_ENCODER_DIR,
                                                 'model.bbox_head.type': 'PresenceSOCHead'})
    for branch in model.bbox_head.presence_branches:  # random presences on both sides of 0.5
        torch.nn.init.normal_(branch.layers[-1].weight, std=0.5)
        torch.nn.init.constant_(branch.layers[-1].bias, 0.0)
    path = str(tmp_path / 'presence.onnx')
    meta = export_onnx(model, path, num_frames=NUM_FRAMES, size=SIZE)
    assert meta['outputs'] == ['cls_logits', 'mask_logits', 'presence']
    diffs = verify_onnx(model, path)
    assert set(diffs) == {'cls_logits', 'mask_logits', 'presence'} and max(diffs.values()) < TOLERANCE, diffs
    runtime = ONNXRuntimeSOC(path, num_threads=1)
    video = moving_blobs(2 * NUM_FRAMES)
    from soc_mm.models.inference import RVOSTestOptions
    options = runtime.test_options.replace(presence_thr=0.5)
    results = runtime.inference(video, EXPRESSIONS, test_options=options)
    model_options = model.test_options.replace(clip_len=NUM_FRAMES)
    reference = inference_rvos(model, video, EXPRESSIONS, test_options=model_options.replace(presence_thr=0.5))
    plain = inference_rvos(model, video, EXPRESSIONS, test_options=model_options)
    assert isinstance(options, RVOSTestOptions)
    emptied = 0
    for a, b, c in zip(results, reference, plain):
        assert torch.equal(a.pred_masks, b.pred_masks)
        emptied += int((c.pred_masks.flatten(1).any(1) & ~b.pred_masks.flatten(1).any(1)).sum())
    assert emptied > 0  # the threshold acted on the graph's presence: some painted frames were emptied
    with pytest.raises(ValueError, match=r"the graph gives \['cls_logits', 'mask_logits', 'presence'\], the config's "
                                         r"head \(SOCHead\) post-processes"):
        ONNXRuntimeSOC(path, config=TINY_CONFIG, cfg_options={'model.text_encoder.model_path': TEXT_ENCODER_DIR})
    with pytest.raises(ValueError, match='not a graph of this model'):
        torch.manual_seed(0)
        verify_onnx(init_model(TINY_CONFIG, cfg_options={'model.text_encoder.model_path': TEXT_ENCODER_DIR}), path)
