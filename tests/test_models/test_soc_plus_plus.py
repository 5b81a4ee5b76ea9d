"""SOC++'s parts: random_walk_refine (closed form), FrameScoredVOC (window refusal, the official text-match
pairing), SOCPlusPlus (cluster-decoder type, last-layer evaluation, frozen pooler) and the SOC++ settings that
official_model_cfg refuses."""
import copy
import json
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

import soc_mm  # noqa: F401  (registries)
from conftest import FIXTURE_ROOT as SOC_ROOT
from conftest import TESTS_DIR
from soc_mm.models.layers.frame_scored_voc import FrameScoredVOC
from soc_mm.models.layers.random_walk import random_walk_refine
from soc_mm.official.config import OfficialConfigError, official_model_cfg
from soc_mm.registry import MODELS

SOCPP_ROOT = osp.join(TESTS_DIR, 'data', 'socpp_reference')
TEXT_ENCODER = osp.join(SOCPP_ROOT, 'common', 'text_encoder')
B1_VARIANT = 'ytvos_b1_t10_nc1_w0'  # B=1: no batch regrouping, plain SOCPlusPlus reproduces it


def fixture_config(variant: str = B1_VARIANT, root: str = SOCPP_ROOT) -> dict:
    with open(osp.join(root, variant, 'config.json')) as f:
        return json.load(f)


def build(cfg: dict):
    with DefaultScope.overwrite_default_scope('soc_mm'):
        return MODELS.build(cfg)


# ------------------------------------------------------------------ random walk
def closed_form_random_walk(x: torch.Tensor, y: torch.Tensor, w: float, temperature: float) -> torch.Tensor:
    """SOC++'s random walk, video by video, with an explicit inverse:
    ``(1 - w) (I - w^2 Z^T Z_n)^{-1} (w Z^T y + x)``, ``Z = softmax_K(temperature * cos(y, x))`` [K, n],
    ``Z_n = Z / (sum_n Z + 1e-9)``."""
    out = []
    for xi, yi in zip(x, y):
        xu = xi / (xi.norm(dim=-1, keepdim=True) + 1e-9)
        yu = yi / (yi.norm(dim=-1, keepdim=True) + 1e-9)
        z = torch.softmax(temperature * yu @ xu.T, dim=0)  # [K, n]: each column a distribution over K
        zn = z / (z.sum(dim=1, keepdim=True) + 1e-9)
        a = z.T @ zn  # [n, n]
        inverse = torch.linalg.inv(torch.eye(len(xi), dtype=x.dtype) - w**2 * a)
        out.append((1 - w) * inverse @ (w * z.T @ yi + xi))
    return torch.stack(out)


@pytest.mark.parametrize('N, n, K, w, temperature', [(4, 5, 15, 0.5, 5.0), (3, 2, 7, 0.3, 2.0), (1, 6, 4, 0.9, 1.0)])
def test_random_walk_equals_the_closed_form(N, n, K, w, temperature):
    g = torch.Generator().manual_seed(N * 100 + n)
    x = torch.randn(N, n, 16, generator=g, dtype=torch.float64)
    y = torch.randn(N, K, 16, generator=g, dtype=torch.float64)
    out = random_walk_refine(x, y, weight=w, temperature=temperature)
    assert out.shape == (N, n, 16) and out.dtype == torch.float64
    torch.testing.assert_close(out, closed_form_random_walk(x, y, w, temperature), rtol=1e-12, atol=1e-12)
    # the walk does move the queries; with w = 0 it stops at once
    assert (out - x).abs().max() > 1e-3
    torch.testing.assert_close(random_walk_refine(x, y, weight=0.0, temperature=temperature), x)


def test_random_walk_with_as_many_videos_as_video_queries():
    """N = n: an unbatched identity in ``linalg.solve`` is read as a batch of n vectors (the official call);
    the refinement still solves one n x n system per video."""
    N = n = 5
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, n, 8, generator=g, dtype=torch.float64)
    y = torch.randn(N, 12, 8, generator=g, dtype=torch.float64)
    system = torch.eye(n, dtype=x.dtype) - 0.25 * torch.rand(N, n, n, generator=g, dtype=x.dtype) / n
    assert torch.linalg.solve(system, torch.eye(n, dtype=x.dtype)).shape == (n, n)  # the pitfall: not [N, n, n]
    out = random_walk_refine(x, y)
    assert out.shape == (N, n, 8)
    torch.testing.assert_close(out, closed_form_random_walk(x, y, 0.5, 5.0), rtol=1e-12, atol=1e-12)
    # each video on its own gives the same rows (nothing mixes the videos)
    torch.testing.assert_close(out[2:3], random_walk_refine(x[2:3], y[2:3]), rtol=1e-12, atol=1e-12)


def test_random_walk_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r'video_queries \[N, n, C\] and frame_queries \[N, K, C\] expected, got '
                                         r'\(2, 5, 8\) and \(3, 7, 8\)'):
        random_walk_refine(torch.zeros(2, 5, 8), torch.zeros(3, 7, 8))


# ------------------------------------------------------------------ FrameScoredVOC
SMALL_VOC = dict(embed_dims=16, num_heads=2, num_queries=3, num_frame_queries=3, num_encoder_layers=1,
                 num_decoder_layers=1, feedforward_channels=32)


def small_voc(**kwargs) -> FrameScoredVOC:
    torch.manual_seed(0)
    voc = FrameScoredVOC(**dict(SMALL_VOC, **kwargs))
    voc.init_weights()
    return voc.eval()


@pytest.mark.parametrize('window_size', [1, 2, 6])
def test_frame_scored_voc_refuses_a_window(window_size):
    with pytest.raises(ValueError, match=rf'FrameScoredVOC: window_size must be 0, got {window_size} \(SOC\+\+ has '
                                         r'no working windowed encoder\)'):
        FrameScoredVOC(embed_dims=16, num_heads=2, window_size=window_size)


def cos_score(frame: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
    """sigmoid(mean over the frame's queries of cos(query, sentence)): frame [nq, C], sentence [C] -> []."""
    return torch.sigmoid(F.cosine_similarity(frame, sentence[None], dim=-1).mean())


def test_text_match_with_one_layer_and_one_video_pairs_each_frame_with_itself():
    voc = small_voc()
    g = torch.Generator().manual_seed(0)
    frames, sentence = torch.randn(1, 5, 3, 16, generator=g), torch.randn(1, 16, generator=g)
    score = voc.text_match_score(frames, sentence, num_layers=1)
    assert score.shape == (1, 5, 1)
    expected = torch.stack([cos_score(frames[0, t], sentence[0]) for t in range(5)])
    torch.testing.assert_close(score[0, :, 0], expected)


def official_pairing(L: int, B: int, T: int) -> dict:
    """The official text-match pairing, from its flattening rule: the frame queries are flattened time-major,
    rows ``(t, n)`` with ``n = l*B + b``, the sentences (and the scores' slots) ``(b, l, t)``, and row i of one
    is paired with row i of the other. -> {slot (n, t): the frame (n', t') whose score it holds}."""
    frame_rows = [(n, t) for t in range(T) for n in range(L * B)]
    slots = [(l * B + b, t) for b in range(B) for l in range(L) for t in range(T)]
    return dict(zip(slots, frame_rows))


@pytest.mark.parametrize('L, B, T', [(2, 1, 3), (2, 1, 10), (2, 3, 4), (3, 2, 2)])
def test_text_match_follows_the_official_pairing(L, B, T):
    """The official batch-wide pairing (soc_mm.official.BatchPairingFrameScoredVOC, the golden comparison);
    FrameScoredVOC pairs each video with its own frames in the official per-video order, which is the same
    at batch 1 and, batched, gives every video its score alone."""
    from soc_mm.official import BatchPairingFrameScoredVOC
    voc = small_voc()
    official_voc = BatchPairingFrameScoredVOC(**SMALL_VOC)
    g = torch.Generator().manual_seed(L * 10 + B)
    frames = torch.randn(L * B, T, 3, 16, generator=g)  # row l*B + b: layer l, video b
    sentences = torch.randn(B, 16, generator=g)
    score = official_voc.text_match_score(frames, sentences.repeat(L, 1), num_layers=L)  # as SOCPlusPlus passes them
    pairing = official_pairing(L, B, T)
    expected = torch.empty(L * B, T)
    for (n, t), (n_src, t_src) in pairing.items():
        expected[n, t] = cos_score(frames[n_src, t_src], sentences[n % B])
    torch.testing.assert_close(score[..., 0], expected)
    # not the natural pairing: frames and layers are scrambled
    assert any(pairing[(n, t)] != (n, t) for n in range(L * B) for t in range(T))
    natural = torch.stack([torch.stack([cos_score(frames[n, t], sentences[n % B]) for t in range(T)])
                           for n in range(L * B)])
    assert not torch.allclose(score[..., 0], natural)
    # FrameScoredVOC: each video alone through the official rule (batch 1)
    ours = voc.text_match_score(frames, sentences.repeat(L, 1), num_layers=L)
    for b in range(B):
        rows = [l * B + b for l in range(L)]
        alone = official_voc.text_match_score(frames[rows], sentences[b:b + 1].repeat(L, 1), num_layers=L)
        torch.testing.assert_close(ours[rows], alone)
    if B == 1:
        torch.testing.assert_close(ours, score)
    if (L, B) == (2, 1):  # the fixtures' README: slot (t=1, l=0) holds the score of (t=0, l=1)
        assert pairing[(0, 1)] == (1, 0)
        torch.testing.assert_close(score[0, 1, 0], cos_score(frames[1, 0], sentences[0]))


def test_frame_scores_are_visibility_plus_match_plus_half_difference_from_the_running_mean():
    voc = small_voc()
    g = torch.Generator().manual_seed(3)
    frames, sentence = torch.randn(2, 4, 3, 16, generator=g), torch.randn(2, 16, generator=g)
    flat = frames.flatten(2)
    running_mean = torch.stack([flat[:, :t + 1].mean(1) for t in range(4)], 1)
    expected = (voc.visibility_scorer(flat) + voc.text_match_score(frames, sentence, 2)
                + 0.5 * voc.difference_scorer(flat - running_mean))
    torch.testing.assert_close(voc.frame_scores(frames, sentence, num_layers=2), expected)
    # the forward weights its frames by these scores: other scores, other video queries
    out = voc(frames, sentence, num_layers=2)
    assert out.shape == (2, 3, 16)
    with torch.no_grad():
        voc.visibility_scorer.fc.bias.add_(3.0)
    assert not torch.allclose(voc(frames, sentence, num_layers=2), out)


# ------------------------------------------------------------------ SOCPlusPlus
def socpp_cfg(variant: str = B1_VARIANT) -> dict:
    return official_model_cfg(fixture_config(variant)['official_config'], TEXT_ENCODER)


def test_socpp_refuses_a_plain_voc():
    cfg = socpp_cfg()
    cfg['voc']['type'] = 'VOC'
    with pytest.raises(TypeError, match=r"SOCPlusPlus: voc must be a FrameScoredVOC \(SOC\+\+'s cluster decoder\), "
                                        r'got VOC'):
        build(cfg)


def test_socpp_evaluates_the_last_layer_by_default():
    """No ``output_layer`` in test_cfg: the last decoder layer's heads give the predictions (SOC: the first),
    checked against the official outputs of the B=1 fixture (main output = last layer, aux[0] = layer 0)."""
    from soc_mm.official.checkpoint import convert_official_state_dict
    from soc_mm.official.reference import fixture_batch, load_fixture_state_dict
    cfg = socpp_cfg()
    del cfg['test_cfg']['output_layer']
    model = build(cfg)
    assert model.test_cfg['output_layer'] == 'last' and model.output_layer == 1
    assert model.bbox_head.test_options.output_layer == 'last'
    soc_cfg = official_model_cfg(fixture_config('ytvos_b2_t3_nc1_w0', SOC_ROOT)['official_config'], TEXT_ENCODER)
    assert build(soc_cfg).output_layer == 0  # SOC's default, for contrast
    explicit = copy.deepcopy(cfg)
    explicit['test_cfg']['output_layer'] = 'first'
    assert build(explicit).output_layer == 0  # a configured layer is kept

    fixture = osp.join(SOCPP_ROOT, B1_VARIANT)
    model.load_state_dict(convert_official_state_dict(load_fixture_state_dict(fixture, fixture_config())))
    model.eval()
    clips, samples = fixture_batch(torch.load(osp.join(fixture, 'inputs.pt'), weights_only=True))
    ref = torch.load(osp.join(fixture, 'outputs_eval.pt'), weights_only=True)

    def top1_frame_scores(cls):  # [T, 1, nq, K] official logits -> the selected query's score per frame
        prob = cls[:, 0].sigmoid()
        return prob[:, prob.mean(0).amax(-1).argmax()].amax(-1)

    with torch.no_grad():
        last = model(clips, samples, mode='predict')[0].pred_scores
        model.test_options = model.test_options.replace(output_layer=0)
        first = model(clips, samples, mode='predict')[0].pred_scores
    torch.testing.assert_close(last, top1_frame_scores(ref['pred_cls']), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(first, top1_frame_scores(ref['aux_outputs'][0]['pred_cls']), rtol=1e-4, atol=1e-7)
    assert not torch.allclose(last, first)


def test_socpp_freezes_the_text_encoder_pooler():
    """A trainable text encoder: every RoBERTa parameter trains except the pooler (unused by SOC++); SOC trains
    it (its sentence feature is the pooler output)."""
    cfg = socpp_cfg()
    cfg['text_encoder']['freeze'] = False
    model = build(cfg)
    roberta = model.text_encoder.model
    frozen = sorted(k for k, p in roberta.named_parameters() if not p.requires_grad)
    assert frozen == ['pooler.dense.bias', 'pooler.dense.weight']
    assert all(p.requires_grad for p in model.text_encoder.proj.parameters())
    soc_cfg = official_model_cfg(fixture_config('ytvos_b2_t3_nc1_w0', SOC_ROOT)['official_config'], TEXT_ENCODER)
    soc_cfg['text_encoder']['freeze'] = False
    assert all(p.requires_grad for p in build(soc_cfg).text_encoder.model.pooler.parameters())


# ------------------------------------------------------------------ official_model_cfg
_DELETE = object()


def _official(**changes) -> dict:
    official = copy.deepcopy(fixture_config('ytvos_b2_t3_nc1_w0')['official_config'])
    for key, value in changes.items():
        if value is _DELETE:
            del official[key]
        else:
            official[key] = value
    return official


@pytest.mark.parametrize('changes, message', [
    (dict(use_proxymmf=False), "use_proxymmf=False is not supported by soc_mm: SOC++'s forward needs the proxies"),
    (dict(use_proxymmf='yes'), '"use_proxymmf" must be true or false, got \'yes\''),
    (dict(num_proxy_query=0), '"num_proxy_query" must be an integer >= 1, got 0'),
    (dict(num_proxy_query=_DELETE), "['use_proxymmf'] without ['num_proxy_query']: a SOC++ configuration has both"),
    (dict(use_proxymmf=_DELETE), "['num_proxy_query'] without ['use_proxymmf']: a SOC++ configuration has both"),
])
def test_official_socpp_settings_refused_naming_the_key(changes, message):
    with pytest.raises(OfficialConfigError) as info:
        official_model_cfg(_official(**changes), TEXT_ENCODER)
    assert message in str(info.value)


def test_official_socpp_window_refused_naming_the_key():
    official = _official()
    official['VOC'] = dict(official['VOC'], window_size=2)
    with pytest.raises(OfficialConfigError, match=r"VOC\.window_size=2 is not supported by soc_mm: SOC\+\+'s "
                                                  r'windowed cluster-decoder path does not run'):
        official_model_cfg(official, TEXT_ENCODER)


def test_official_mevis_dataset_only_for_socpp():
    soc = fixture_config('ytvos_b2_t3_nc1_w0', SOC_ROOT)['official_config']
    with pytest.raises(OfficialConfigError, match=r"dataset_name='mevis' is not supported by soc_mm: the official SOC "
                                                  r'code has no mevis dataset_name \(SOC\+\+ has\)'):
        official_model_cfg(dict(soc, dataset_name='mevis'), TEXT_ENCODER)
    cfg = official_model_cfg(_official(dataset_name='mevis'), TEXT_ENCODER)
    assert cfg['type'] == 'SOCPlusPlus' and cfg['train_cfg']['referred_only'] is True
