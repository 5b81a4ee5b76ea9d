"""Official SOC++ checkpoints (yongliu20/MRVS_SOC) -> SOCPlusPlus: the converter's SOC++ key table
(``SOCPP_KEY_RULES``, layout detected or named), tools/model_converters/soc_official_to_mm.py with a SOC++
config, the checkpoint it writes loaded by ``init_model`` and run by tools/test.py, and every wrong
checkpoint refused with a message naming the problem."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import soc_mm  # noqa: F401  (registries)
from conftest import FIXTURE_ROOT as SOC_ROOT
from conftest import REPO_ROOT, TESTS_DIR, subprocess_env
from soc_mm.official.checkpoint import (OfficialCheckpointError, convert_official_state_dict,
                                        detect_official_layout)
from soc_mm.official.config import official_model_cfg
from soc_mm.official.convert import ConversionError, convert_official_checkpoint
from soc_mm.official.reference import load_fixture_state_dict
from soc_mm.registry import MODELS

SOCPP_ROOT = osp.join(TESTS_DIR, 'data', 'socpp_reference')
SOCPP_VARIANTS = sorted(d for d in os.listdir(SOCPP_ROOT)
                        if osp.isfile(osp.join(SOCPP_ROOT, d, 'config.json')))
TEXT_ENCODER = osp.join(SOCPP_ROOT, 'common', 'text_encoder')
MAIN = 'ytvos_b2_t3_nc1_w0'
TOOL = osp.join(REPO_ROOT, 'tools', 'model_converters', 'soc_official_to_mm.py')
TINY_SOCPP = osp.join(REPO_ROOT, 'configs', 'soc_plus_plus', 'socpp_tiny_synthetic.py')
SOCPP_NAME, SOC_NAME = 'SOC++ (yongliu20/MRVS_SOC)', 'SOC (RobertLuo1/NeurIPS2023_SOC)'
#: official SOC++ modules SOC has not (proxies, query fusion, the cluster decoder's scorers and query content)
SOCPP_ONLY = re.compile(r'^(proxy_embed|v2p|query_fusion|voc\.(score_embd|diff_embd|video_query_embed))\.'
                        r'|^voc\.enc_self_attn\.\d+\.multihead_attn\.')  # SOC++'s VOC encoder cross-attention


@pytest.fixture(scope='module')
def socpp_sd():
    return torch.load(osp.join(SOCPP_ROOT, 'common', 'official_state_dict.pt'), weights_only=True)


@pytest.fixture(scope='module')
def soc_sd():
    return torch.load(osp.join(SOC_ROOT, 'common', 'official_state_dict.pt'), weights_only=True)


def fixture_official(variant: str = MAIN, root: str = SOCPP_ROOT) -> dict:
    with open(osp.join(root, variant, 'config.json')) as f:
        return json.load(f)['official_config']


def write_config(path, official: dict, text_encoder: str = TEXT_ENCODER) -> str:
    """An soc_mm config file of an official configuration's model, as a user would pass with --config."""
    Config(dict(default_scope='soc_mm', model=official_model_cfg(official, text_encoder))).dump(str(path))
    return str(path)


@pytest.fixture(scope='module')
def socpp_config(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp('cfg') / 'socpp_fixture.py', fixture_official())


@pytest.fixture(scope='module')
def soc_config(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp('cfg') / 'soc_fixture.py', fixture_official(MAIN, SOC_ROOT),
                        osp.join(SOC_ROOT, 'common', 'text_encoder'))


def official_checkpoint(path, state_dict) -> str:
    """A checkpoint as the official trainer saves it."""
    torch.save(dict(epoch=3, model_state_dict=state_dict, optimizer_state_dict={}), path)
    return str(path)


def convert(src, dst, config=None):
    """convert_official_checkpoint (what the tool runs) -> (tensors written or None, the error message or '')."""
    try:
        return convert_official_checkpoint(str(src), str(dst), config), ''
    except ConversionError as err:
        return None, str(err)


# ------------------------------------------------------------------ conversion
def test_layout_is_detected_from_the_socpp_only_modules(socpp_sd, soc_sd):
    assert detect_official_layout(socpp_sd) == 'socpp' and detect_official_layout(soc_sd) == 'soc'
    assert detect_official_layout({f'module.{k}': v for k, v in socpp_sd.items()}) == 'socpp'  # DDP prefix
    for key in ('proxy_embed.weight', 'v2p.multihead_attn.in_proj_weight', 'query_fusion.norm.weight',
                'voc.score_embd.1.weight', 'voc.diff_embd.0.norm.bias', 'voc.video_query_embed.weight'):
        assert detect_official_layout(dict(soc_sd, **{key: socpp_sd[key]})) == 'socpp', key


def test_harness_state_dict_converts_with_the_detected_layout(socpp_sd):
    converted = convert_official_state_dict(socpp_sd)  # layout detected
    assert list(converted.items()) == list(convert_official_state_dict(socpp_sd, 'socpp').items())
    assert len(converted) == len(socpp_sd) - 12  # transformer.decoder.bbox_embed.* duplicates dropped
    for ours, official in (('proxy_queries.weight', 'proxy_embed.weight'),
                           ('proxy_fusion.attn.in_proj_weight', 'v2p.multihead_attn.in_proj_weight'),
                           ('query_fusion.cross_attn.attn.out_proj.bias', 'query_fusion.multihead_attn.out_proj.bias'),
                           ('query_fusion.norm.weight', 'query_fusion.norm.weight'),
                           ('voc.query_content.weight', 'voc.video_query_embed.weight'),
                           ('voc.visibility_scorer.fc.weight', 'voc.score_embd.1.weight'),
                           ('voc.visibility_scorer.ffn.layers.0.0.weight', 'voc.score_embd.0.linear1.weight'),
                           ('voc.difference_scorer.norm.bias', 'voc.diff_embd.0.norm.bias'),
                           ('voc.encoder_layers.1.cross_attn.attn.in_proj_weight',
                            'voc.enc_self_attn.1.multihead_attn.in_proj_weight'),
                           ('voc.encoder_layers.0.norms.0.weight', 'voc.enc_self_attn.0.norm.weight'),
                           ('voc.encoder_layers.0.norms.1.bias', 'voc.enc_ffn.0.norm.bias'),
                           ('query_embedding.weight', 'query_embed.weight')):
        assert converted[ours] is socpp_sd[official], ours


@pytest.mark.parametrize('variant', SOCPP_VARIANTS)
def test_every_fixture_checkpoint_loads_strictly_into_its_config_model(variant):
    """Each variant's weights (with its overrides: 65 classes, 7 proxies / 6 queries), converted with the layout
    detected, fill the model of its official configuration exactly."""
    fixture = osp.join(SOCPP_ROOT, variant)
    with open(osp.join(fixture, 'config.json')) as f:
        config = json.load(f)
    model = MODELS.build(official_model_cfg(config['official_config'], TEXT_ENCODER))
    assert type(model).__name__ == 'SOCPlusPlus' and type(model.voc).__name__ == 'FrameScoredVOC'
    state_dict = convert_official_state_dict(load_fixture_state_dict(fixture, config))
    assert model.load_state_dict(state_dict, strict=True)
    assert model.proxy_queries.num_embeddings == config['official_config']['num_proxy_query']


# ------------------------------------------------------------------ the tool, init_model, tools/test.py
def test_tool_writes_a_checkpoint_that_init_model_loads_and_tools_test_runs(tmp_path, socpp_sd, socpp_config):
    from soc_mm.apis import init_model
    from soc_mm.apis.demo_runner import read_metrics
    from soc_mm.datasets import synthetic
    from soc_mm.official.outputs import official_outputs
    from soc_mm.official.reference import fixture_batch

    src = official_checkpoint(tmp_path / 'official.pth.tar', socpp_sd)
    dst = str(tmp_path / 'socpp.pth')
    env = subprocess_env()
    proc = subprocess.run([sys.executable, TOOL, src, dst, '--config', socpp_config], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'converted {len(socpp_sd) - 12} tensors -> {dst} (checked against {socpp_config})' in proc.stdout

    # init_model (strict) with the config it was checked against: it reproduces the official eval outputs
    # (a B=1 fixture: no batch regrouping involved)
    model = init_model(socpp_config, dst)
    assert type(model).__name__ == 'SOCPlusPlus' and not model.training
    fixture = osp.join(SOCPP_ROOT, 'ytvos_b1_t10_nc1_w0')
    clips, samples = fixture_batch(torch.load(osp.join(fixture, 'inputs.pt'), weights_only=True))
    with torch.no_grad():
        ours = official_outputs(model, clips, samples)
    ref = torch.load(osp.join(fixture, 'outputs_eval.pt'), weights_only=True)
    for key in ('pred_masks', 'pred_cls', 'pred_boxes', 'pred_logit', 'text_sentence_feature'):
        diff = (ours[key] - ref[key]).abs().max().item()
        assert diff <= 1e-4 * max(1.0, ref[key].abs().max().item()), (key, diff)

    # the tiny SOC++ config (SOC++'s MeViS data and inference) with the fixture's proxy count and text encoder
    sizes = {'model.num_proxy_queries': 4, 'model.text_encoder.model_path': TEXT_ENCODER}
    model = init_model(TINY_SOCPP, dst, cfg_options=sizes)
    torch.testing.assert_close(model.proxy_queries.weight, socpp_sd['proxy_embed.weight'], rtol=0, atol=0)
    root = str(tmp_path / 'mevis') + '/'
    synthetic.generate_mevis(root, num_train=1, num_valid_u=2, num_valid=0, num_frames=6, size=(48, 48), seed=0)
    options = [f'{k}={v}' for k, v in sizes.items()] + [
        f'test_dataloader.dataset.data_root={root}', f'test_evaluator.meta_file={root}valid_u/meta_expressions.json',
        f'test_evaluator.mask_dict_file={root}valid_u/mask_dict.json']
    work_dir = str(tmp_path / 'test')
    test = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), TINY_SOCPP, dst, '--work-dir',
                           work_dir, '--cfg-options', *options], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert test.returncode == 0, (test.stdout + test.stderr)[-4000:]
    metrics = read_metrics(work_dir)
    for key in ('mevis/J', 'mevis/F', 'mevis/J&F'):
        assert 0.0 <= metrics[key] <= 1.0, metrics


# ------------------------------------------------------------------ refusals
def test_a_missing_socpp_key_is_named(tmp_path, socpp_sd):
    sd = dict(socpp_sd)
    del sd['voc.score_embd.0.linear1.weight']
    dst = tmp_path / 'ours.pth'
    count, err = convert(official_checkpoint(tmp_path / 'official.pth.tar', sd), dst)
    assert count is None and not dst.exists()
    assert f'not a complete official {SOCPP_NAME} checkpoint' in err
    assert '1 missing key(s): voc.score_embd.0.linear1.weight' in err


def test_a_missing_socpp_module_is_named(socpp_sd):
    sd = {k: v for k, v in socpp_sd.items() if not k.startswith('query_fusion.')}
    with pytest.raises(OfficialCheckpointError) as info:
        convert_official_state_dict(sd)
    assert re.search(r'1 missing key\(s\): query_fusion\.\{multihead_attn\.in_proj_weight,[^}]*norm\.bias\}',
                     str(info.value)), str(info.value)


def test_wrong_shapes_against_the_config_are_named(tmp_path, socpp_sd, socpp_config):
    """The 7-proxy / 6-query overrides on the 4-proxy / 5-query model: every offender named, nothing written."""
    overrides = torch.load(osp.join(SOCPP_ROOT, 'common', 'official_state_dict_p7q6_overrides.pt'), weights_only=True)
    src = official_checkpoint(tmp_path / 'official.pth.tar', dict(socpp_sd, **overrides))
    dst = tmp_path / 'ours.pth'
    assert convert(src, dst) == (len(socpp_sd) - 12, '')  # complete by the key table: only the model can tell
    dst.unlink()
    count, err = convert(src, dst, socpp_config)
    assert count is None and not dst.exists()
    assert f'does not fit the model of {socpp_config}' in err
    for line in ('proxy_queries.weight: shape [7, 128] in the checkpoint, [4, 128] in the model',
                 'query_embedding.weight: shape [6, 128] in the checkpoint, [5, 128] in the model',
                 'voc.query_content.weight: shape [6, 128] in the checkpoint, [5, 128] in the model',
                 'voc.visibility_scorer.fc.weight: shape [1, 768] in the checkpoint, [1, 640] in the model',
                 'voc.difference_scorer.ffn.layers.0.0.weight: shape [128, 768] in the checkpoint, '
                 '[128, 640] in the model'):
        assert line in err, line


def test_a_soc_checkpoint_for_a_socpp_config_is_refused_saying_so(tmp_path, soc_sd, socpp_config):
    dst = tmp_path / 'ours.pth'
    count, err = convert(official_checkpoint(tmp_path / 'soc.pth.tar', soc_sd), dst, socpp_config)
    assert count is None and not dst.exists()
    assert f'not a complete official {SOCPP_NAME} checkpoint' in err
    assert f'it looks like an official {SOC_NAME} checkpoint' in err
    assert 'SOCPlusPlus' in err  # the model the config builds
    assert 'missing key(s):' in err and 'proxy_embed.{weight}' in err


def test_a_socpp_checkpoint_for_a_soc_config_is_refused_saying_so(tmp_path, socpp_sd, soc_config):
    """Through the tool, as users run it: exit status 1, the reason on stderr, nothing written."""
    src = official_checkpoint(tmp_path / 'socpp.pth.tar', socpp_sd)
    dst = tmp_path / 'ours.pth'
    proc = subprocess.run([sys.executable, TOOL, src, str(dst), '--config', soc_config], capture_output=True,
                          text=True, env=subprocess_env(), timeout=300)
    assert proc.returncode == 1 and proc.stdout == '' and not dst.exists()
    assert f'soc_official_to_mm: error: {src}: not a complete official {SOC_NAME} checkpoint' in proc.stderr
    assert f'it looks like an official {SOCPP_NAME} checkpoint' in proc.stderr
    assert 'unknown key(s)' in proc.stderr and 'proxy_embed.weight' in proc.stderr


def test_a_socpp_checkpoint_as_layout_soc_lists_its_socpp_only_keys_as_unknown(socpp_sd):
    with pytest.raises(OfficialCheckpointError) as info:
        convert_official_state_dict(socpp_sd, layout='soc')
    err = str(info.value)
    assert err.startswith(f'not a complete official {SOC_NAME} checkpoint')
    assert f'it looks like an official {SOCPP_NAME} checkpoint' in err
    expected = sorted(k for k in socpp_sd if SOCPP_ONLY.search(k))
    assert len(expected) == 36
    m = re.search(r'(\d+) unknown key\(s\) \(no rule of the .*? known extra\): (.*)', err)
    assert m and int(m[1]) == len(expected) and m[2].split(', ') == expected, err
    # SOC's VOC encoder attention is SOC++'s cross-attention: SOC's table misses its self-attention
    assert 'missing key(s): voc.enc_self_attn.0.self_attn.in_proj_weight' in err


def test_a_soc_checkpoint_as_layout_socpp_lists_the_missing_socpp_modules(soc_sd):
    with pytest.raises(OfficialCheckpointError) as info:
        convert_official_state_dict(soc_sd, layout='socpp')
    err = str(info.value)
    assert f'it looks like an official {SOC_NAME} checkpoint' in err
    for module in ('proxy_embed.{weight}', 'v2p.{', 'query_fusion.{', 'voc.score_embd.0.{', 'voc.diff_embd.1.{',
                   'voc.video_query_embed.weight', 'voc.enc_self_attn.0.multihead_attn.in_proj_weight'):
        assert module in err, module
    with pytest.raises(ValueError, match=r"unknown official checkpoint layout 'socplusplus'"):
        convert_official_state_dict(soc_sd, layout='socplusplus')
