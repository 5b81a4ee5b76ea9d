"""tools/model_converters/soc_official_to_mm.py (soc_mm.official.convert) never writes an incomplete or wrongly
shaped checkpoint."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import soc_mm  # noqa: F401  (registries)
from conftest import FIXTURE_ROOT, REPO_ROOT, subprocess_env
from soc_mm.official.checkpoint import OfficialCheckpointError, load_official_checkpoint
from soc_mm.official.config import official_model_cfg
from soc_mm.official.convert import ConversionError, convert_official_checkpoint

TOOL = osp.join(REPO_ROOT, 'tools', 'model_converters', 'soc_official_to_mm.py')
TEXT_ENCODER = osp.join(FIXTURE_ROOT, 'common', 'text_encoder')


@pytest.fixture(scope='module')
def official_sd():
    return torch.load(osp.join(FIXTURE_ROOT, 'common', 'official_state_dict.pt'), weights_only=True)


def official_checkpoint(path, state_dict):
    """A checkpoint as the official trainer saves it (model + optimizer/scheduler/scaler state)."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [20])
    torch.save(dict(epoch=3, total_epochs=30, model_state_dict=state_dict, optimizer_state_dict=optimizer.state_dict(),
                    scheduler_state_dict=scheduler.state_dict(), grad_scaler_state_dict={}, best_loss=1.5), path)
    return str(path)


def run(src, dst, config=None):
    """convert_official_checkpoint (what the tool runs) -> (tensors written or None, the error message or '')."""
    try:
        return convert_official_checkpoint(str(src), str(dst), config), ''
    except ConversionError as err:
        return None, str(err)


@pytest.fixture(scope='module')
def fixture_config(tmp_path_factory):
    """An soc_mm config file of the fixture model (num_classes 1), as a user would pass with --config."""
    with open(osp.join(FIXTURE_ROOT, 'ytvos_b2_t3_nc1_w0', 'config.json')) as f:
        official = json.load(f)['official_config']
    path = tmp_path_factory.mktemp('cfg') / 'soc_fixture.py'
    Config(dict(default_scope='soc_mm', model=official_model_cfg(official, TEXT_ENCODER))).dump(str(path))
    return str(path)


def test_one_missing_key_fails_with_its_name(tmp_path, official_sd):
    sd = dict(official_sd)
    del sd['voc.transformer_ffn_layers.1.norm.bias']
    dst = tmp_path / 'ours.pth'
    count, err = run(official_checkpoint(tmp_path / 'official.pth.tar', sd), dst)
    assert count is None
    assert '1 missing key(s): voc.transformer_ffn_layers.1.norm.bias' in err
    assert not dst.exists()


def test_a_missing_layer_is_found_through_its_sibling_rule(tmp_path, official_sd):
    """VOC encoder layer 1 = enc_self_attn.1 + enc_ffn.1: without enc_ffn.1 the layer is incomplete."""
    sd = {k: v for k, v in official_sd.items() if not k.startswith('voc.enc_ffn.1.')}
    count, err = run(official_checkpoint(tmp_path / 'official.pth.tar', sd), tmp_path / 'ours.pth')
    assert count is None and '1 missing key(s): voc.enc_ffn.1.*' in err


def test_unknown_keys_are_listed(tmp_path, official_sd):
    sd = dict(official_sd, **{'voc.extra_norm.weight': torch.ones(128), 'mask_head.weight': torch.ones(1)})
    count, err = run(official_checkpoint(tmp_path / 'official.pth.tar', sd), tmp_path / 'ours.pth')
    assert count is None and '2 unknown key(s)' in err and 'mask_head.weight, voc.extra_norm.weight' in err


def test_wrong_class_embed_shape_fails_against_the_config(tmp_path, official_sd, fixture_config):
    """A class head of 7 classes for a 1-class model: every offender in one error, nothing written."""
    sd = dict(official_sd)
    for level in (0, 1):
        sd[f'class_embed.{level}.weight'] = torch.zeros(7, 128)
        sd[f'class_embed.{level}.bias'] = torch.zeros(7)
    src = official_checkpoint(tmp_path / 'official.pth.tar', sd)
    dst = tmp_path / 'ours.pth'
    assert run(src, dst) == (344, '')  # complete by the rule table: only the model can tell
    dst.unlink()
    count, err = run(src, dst, fixture_config)
    assert count is None and not dst.exists()
    assert '(4 problem(s))' in err
    assert 'bbox_head.cls_branches.0.weight: shape [7, 128] in the checkpoint, [1, 128] in the model' in err
    assert 'bbox_head.cls_branches.1.bias: shape [7] in the checkpoint, [1] in the model' in err


def test_model_keys_not_produced_and_dtypes_are_errors(tmp_path, official_sd):
    with open(osp.join(FIXTURE_ROOT, 'ytvos_b2_t3_nc1_w0', 'config.json')) as f:
        official = json.load(f)['official_config']
    official['VOC'] = dict(official['VOC'], dec_layers=3)  # the model has a third VOC decoder layer
    config = tmp_path / 'soc_voc3.py'
    Config(dict(model=official_model_cfg(official, TEXT_ENCODER))).dump(str(config))
    sd = dict(official_sd, **{'query_embed.weight': official_sd['query_embed.weight'].half()})
    count, err = run(official_checkpoint(tmp_path / 'official.pth.tar', sd), tmp_path / 'ours.pth', str(config))
    assert count is None
    assert 'query_embedding.weight: dtype torch.float16 in the checkpoint, torch.float32 in the model' in err
    assert 'voc.decoder_layers.2.norms.2.bias: in the model, not produced by the conversion' in err


def test_correct_checkpoint_with_config_is_written_and_loads_strictly(tmp_path, official_sd, fixture_config):
    from soc_mm.registry import MODELS
    dst = tmp_path / 'out' / 'ours.pth'
    count, err = run(official_checkpoint(tmp_path / 'official.pth.tar', official_sd), dst, fixture_config)
    assert count == 344, err
    ckpt = torch.load(dst, weights_only=True)
    model = MODELS.build(Config.fromfile(fixture_config).model)
    assert model.load_state_dict(ckpt['state_dict'], strict=True)
    torch.testing.assert_close(ckpt['state_dict']['query_embedding.weight'], official_sd['query_embed.weight'])
    assert [p.name for p in dst.parent.iterdir()] == ['ours.pth']  # no temporary file left


@pytest.mark.parametrize('content, message', [
    (b'', 'empty file (0 bytes), not a checkpoint'),
    (b'model_state_dict: backbone.weight\n', "not a PyTorch checkpoint (expected the zip archive written by "
                                            "torch.save or the legacy torch format; the file starts with b'model"),
    (b'\x80\x02garbage', "not a PyTorch checkpoint (expected the zip archive written by torch.save or the legacy "
                         "torch format; the file starts with b'\\x80\\x02garbage')"),
    (b'PK\x03\x04truncated zip', 'damaged checkpoint (not a complete zip archive'),
])
def test_files_that_are_not_checkpoints(tmp_path, content, message):
    src = tmp_path / 'ckpt.pth.tar'
    src.write_bytes(content)
    count, err = run(src, tmp_path / 'ours.pth')
    assert count is None and f'{src}: {message}' in err and not (tmp_path / 'ours.pth').exists()


@pytest.mark.parametrize('obj, message', [
    ([torch.zeros(1)], 'expected a dict (an official SOC checkpoint), got a list'),
    (dict(epoch=3, optimizer_state_dict={}), 'no model state dict: expected a "model_state_dict" entry'),
    (dict(model_state_dict=[1, 2]), '"model_state_dict" is a list, expected the model state dict'),
    (dict(model_state_dict={}), 'the model state dict is empty'),
    (dict(model_state_dict={'query_embed.weight': 3}), 'state dict entries that are not tensors: query_embed.weight'),
])
def test_checkpoints_without_the_model_state_dict(tmp_path, obj, message):
    src = tmp_path / 'ckpt.pth'
    torch.save(obj, src)
    with pytest.raises(OfficialCheckpointError) as err:
        load_official_checkpoint(str(src))
    assert str(err.value).startswith(f'{src}: {message}')


def test_a_checkpoint_that_needs_code_to_load_is_refused(tmp_path):
    import argparse
    src = tmp_path / 'ckpt.pth'
    torch.save(dict(model_state_dict={'a': torch.zeros(1)}, args=argparse.Namespace(lr=1)), src)
    with pytest.raises(OfficialCheckpointError, match=r"ckpt\.pth'?: it references \['argparse\.Namespace'\]"):
        load_official_checkpoint(str(src))


def test_tool_exit_status_as_a_script(tmp_path):
    """The script as users run it: exit status 1, the reason on stderr, nothing written (the successful run
    is test_compare_with_reference.py::test_converter_tool_writes_a_loadable_checkpoint)."""
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    proc = subprocess.run([sys.executable, TOOL, str(empty), str(tmp_path / 'ours.pth')], capture_output=True,
                          text=True, env=subprocess_env(), timeout=300)
    assert proc.returncode == 1 and proc.stdout == ''
    assert f'soc_official_to_mm: error: {empty}: empty file (0 bytes)' in proc.stderr
    assert not (tmp_path / 'ours.pth').exists()


def test_output_that_is_the_input_or_cannot_be_written_is_refused_before_converting(tmp_path, official_sd):
    """The output names the input through a symbolic or a hard link: refused (the input would be replaced);
    an output that is a folder, a FIFO or under a file: refused naming it, before the checkpoint is read."""
    src = official_checkpoint(tmp_path / 'official.pth', official_sd)
    before = open(src, 'rb').read()
    os.symlink(src, tmp_path / 'link.pth')
    os.link(src, tmp_path / 'hard.pth')
    for dst in ('link.pth', 'hard.pth'):
        count, err = run(tmp_path / dst, src)
        assert count is None and err == f'{src}: the output would overwrite the input {tmp_path / dst}', err
        count, err = run(src, tmp_path / dst)
        assert count is None and 'the output would overwrite the input' in err, err
    assert open(src, 'rb').read() == before
    (tmp_path / 'a_file').write_text('x')
    os.mkfifo(tmp_path / 'out.fifo')
    missing = tmp_path / 'missing.pth'  # never read: the output is checked first
    for dst, message in [(tmp_path, 'is a folder; expected a file path'),
                         (tmp_path / 'a_file' / 'x.pth', f'output folder {tmp_path / "a_file"} is a file'),
                         (tmp_path / 'out.fifo', 'exists and is not a regular file')]:
        count, err = run(missing, dst)
        assert count is None and message in err, err
