"""``--cfg-options`` errors name the option and what was expected; the arguments of tools/train.py and
tools/test.py checked before anything runs (soc_mm/utils/cli.py, soc_mm/utils/launch.py)."""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT, subprocess_env, tools_test_args, tools_train_args
from soc_mm.utils.cli import (TORCHRUN_ENV, CfgOptionsAction, ConfigOptionError, UsageError, check_amp_device,
                              check_launcher_env, check_output_dir, check_output_file, check_train_length,
                              load_config, merge_cfg_options)
from soc_mm.utils.checkpoint import CheckpointValueError
from soc_mm.utils.launch import config_for_testing, config_for_training, parse_tool_args, set_work_dir

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')


def _parser():
    parser = argparse.ArgumentParser(prog='tool')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    return parser


def test_option_without_equals_names_it(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(['--cfg-options', 'train_cfg.max_iters=3', 'model.num_queries'])
    err = capsys.readouterr().err
    assert "'model.num_queries' is not key=value" in err


def _cfg():
    return Config(dict(train_cfg=dict(max_iters=100, by_epoch=False), model=dict(
        num_queries=5, flag=True, name='soc', sizes=[1, 2], layers=[dict(a=1), dict(a=2)], opt=None)))


@pytest.mark.parametrize('key,value,expected', [
    ('train_cfg.max_iters', 'abc', 'expected a number'),
    ('train_cfg.by_epoch', 'yes', 'expected a boolean'),
    ('model.sizes', 3, r'expected a list'),
    ('model.num_queries', [1, 2], 'expected a number'),
    ('model.layers.1.a', 'x', 'expected a number'),
    ('model', 1, 'expected a dict'),
])
def test_wrong_type_names_key_and_expected_type(key, value, expected):
    cfg = _cfg()
    with pytest.raises(ConfigOptionError, match=rf'{key.replace(".", r"[.]")}=.*{expected}'):
        merge_cfg_options(cfg, {key: value})
    assert cfg.to_dict() == _cfg().to_dict()  # nothing half-merged


def test_right_types_and_new_keys_merge():
    cfg = _cfg()
    merge_cfg_options(cfg, {'train_cfg.max_iters': 7, 'model.name': 2024, 'model.opt': [1], 'model.flag': False,
                            'model.layers.0.a': 3, 'model.sizes': (4, 5), 'model.new_key': 'x',
                            'model.num_queries': None})
    assert cfg.train_cfg.max_iters == 7 and cfg.model.name == 2024 and cfg.model.opt == [1]
    assert cfg.model.flag is False and cfg.model.layers[0].a == 3 and list(cfg.model.sizes) == [4, 5]
    assert cfg.model.new_key == 'x' and cfg.model.num_queries is None


def test_setting_inside_a_scalar_names_the_key():
    with pytest.raises(ConfigOptionError, match=r'cannot set model[.]num_queries[.]x=1'):
        merge_cfg_options(_cfg(), {'model.num_queries.x': 1})


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_tools_report_the_option(tmp_path, tool):
    """The tools as users run them: the message names the option, without a traceback, exit status 1."""
    ckpt = tmp_path / 'c.pth'
    import torch
    torch.save(dict(state_dict={}), ckpt)
    args = [str(ckpt)] if tool == 'test.py' else []
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', tool), TINY_CONFIG, *args, '--work-dir',
                           str(tmp_path / 'w'), '--cfg-options', 'model.num_queries=many'],
                          capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f'tools/{tool}: error: --cfg-options:'), proc.stderr
    assert "model.num_queries='many': expected a number (the config has 5)" in message
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'w').exists()


# ------------------------------------------------------------------------------------------ unknown keys
def _module_cfg():
    return Config(dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=100, val_interval=100),
                       model=dict(type='SOC', test_cfg=dict(clip_len=8, score_thr=0), backbone=dict(type='Swin',
                                                                                                    depth=2)),
                       x=dict(max_iters=1)))


@pytest.mark.parametrize('key,message', [
    ('trian_cfg.max_iters', "trian_cfg.max_iters=1: the config has no top-level key 'trian_cfg'; did you mean "
                            "'train_cfg'?"),
    ('model.test_cfg.clip_lenn', "model.test_cfg.clip_lenn=1: model.test_cfg has no key 'clip_lenn'; did you mean "
                                 "'model.test_cfg.clip_len'?"),
    ('model.test_cfg.max_len', "model.test_cfg.max_len=1: model.test_cfg has no key 'max_len'"),  # fixed keys
    ('train_cfg.max_itres', "train_cfg.max_itres=1: train_cfg builds IterBasedTrainLoop, which has no argument "
                            "'max_itres'; did you mean 'train_cfg.max_iters'?"),
    ('model.backbone.dept', "model.backbone.dept=1: model.backbone has no key 'dept'"),  # typo rule: 'Swin' unknown
    ('x.max_itres', "x.max_itres=1: x has no key 'max_itres'; did you mean 'x.max_iters'? (a new key this close "
                    "to an existing one is taken for a typo)"),
    ('model.backbone.typ', "model.backbone.typ=1: model.backbone has no key 'typ'; did you mean "
                           "'model.backbone.type'?"),
    ('model.test_cfgg.clip_len', "model.test_cfgg.clip_len=1: model builds SOC, which has no argument 'test_cfgg'; "
                                 "did you mean 'model.test_cfg'?"),
    ('modle.x', "modle.x=1: the config has no top-level key 'modle'; did you mean 'model'?"),
    ('zzz', "zzz=1: the config has no top-level key 'zzz' (top-level keys: ['model', 'train_cfg', 'x'])"),
])
def test_unknown_keys_are_errors_with_the_closest_key(key, message):
    cfg = _module_cfg()
    with pytest.raises(ConfigOptionError, match='^' + re.escape('--cfg-options: ' + message)):
        merge_cfg_options(cfg, {key: 1})
    assert cfg.to_dict() == _module_cfg().to_dict()  # nothing merged


@pytest.mark.parametrize('key,message', [
    ('optim_wrapper.optimizer.learning_rate', "optim_wrapper.optimizer builds AdamW, which has no argument "
                                              "'learning_rate'"),
    ('train_cfg.iters', "train_cfg builds IterBasedTrainLoop, which has no argument 'iters'; did you mean "
                        "'train_cfg.max_iters'?"),
    ('default_hooks.checkpoint.max_keep',
     "default_hooks.checkpoint builds AtomicCheckpointHook, which has no argument 'max_keep'; did you mean "
     "'default_hooks.checkpoint.max_keep_ckpts'?"),
])
def test_arguments_the_built_class_does_not_take_are_errors(key, message):
    """A new key in a dict that builds a registered class without ``**kwargs`` would fail the build (or, for
    the checkpoint hook, the first save) after the run started: refused at once, naming the class."""
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)),
                      train_cfg=dict(type='IterBasedTrainLoop', max_iters=100),
                      default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=10))))
    with pytest.raises(ConfigOptionError, match=re.escape(f'{key}=3: {message}')):
        merge_cfg_options(cfg, {key: 3})
    # the builders' own keys and real arguments are accepted
    merge_cfg_options(cfg, {'default_hooks.checkpoint.priority': 'VERY_LOW', 'optim_wrapper.paramwise_cfg.x': 1,
                            'optim_wrapper.optimizer.amsgrad': True, 'default_hooks.checkpoint.max_keep_ckpts': 2})
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 2 and cfg.optim_wrapper.optimizer.amsgrad is True


def test_checkpoint_hook_refuses_arguments_it_would_pass_to_the_save():
    """MMEngine's hook hands unknown arguments to ``Runner.save_checkpoint`` at the first save; ours refuses
    them when it is built, naming the closest argument."""
    from soc_mm.engine.hooks.checkpoint_hook import AtomicCheckpointHook
    with pytest.raises(TypeError, match=r"no argument 'max_keep' \(did you mean 'max_keep_ckpts'\?\)"):
        AtomicCheckpointHook(interval=2, max_keep=3)
    assert AtomicCheckpointHook(interval=2, max_keep_ckpts=3).max_keep_ckpts == 3


@pytest.mark.parametrize('key,value,message', [
    ('train_dataloader.batch_size', -1, 'batch_size must be at least 1, got -1'),
    ('train_dataloader.batch_size', 0, 'batch_size must be at least 1, got 0'),
    ('default_hooks.logger.interval', 0, 'interval is a period in iterations (or epochs) and cannot be 0'),
    ('train_cfg.val_interval', 0, 'val_interval is a period in iterations (or epochs) and cannot be 0'),
])
def test_counts_and_periods_that_would_fail_mid_run_are_errors(key, value, message):
    cfg = Config(dict(train_dataloader=dict(batch_size=2), default_hooks=dict(logger=dict(interval=5)),
                      train_cfg=dict(max_iters=10, val_interval=5)))
    with pytest.raises(ConfigOptionError, match=re.escape(f'{key}={value!r}: {message}')):
        merge_cfg_options(cfg, {key: value})
    merge_cfg_options(cfg, {'default_hooks.logger.interval': -1})  # -1 ("never") stays allowed


def test_new_keys_that_are_no_typo_are_allowed():
    """A key not close to any existing one is a new setting (e.g. a constructor argument the module config
    does not list, or a new sub-dict); top-level settings MMEngine's runner reads are allowed too."""
    cfg = _module_cfg()
    del cfg.model.test_cfg['clip_len']  # a test_cfg key the config does not list is still known
    merge_cfg_options(cfg, {'model.test_cfg.clip_len': 4})
    assert cfg.model.test_cfg.clip_len == 4
    merge_cfg_options(cfg, {'model.test_cfg.bf16': True, 'model.backbone.drop_path_rate': 0.1,
                            'model.backbone.init_cfg.checkpoint': 'x.pth', 'randomness.seed': 3,
                            'load_from': 'ckpt.pth', 'model.test_cfg.score_thr': 0.5})
    assert cfg.model.test_cfg.bf16 is True and cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.model.backbone.init_cfg.checkpoint == 'x.pth' and cfg.randomness.seed == 3
    assert cfg.load_from == 'ckpt.pth' and cfg.model.test_cfg.score_thr == 0.5


def test_fixed_keys_come_from_the_package_that_reads_them(monkeypatch):
    """soc_mm.utils.cli imports nothing above it: model.test_cfg's keys are registered by the model's
    test options (its fields and the renamed keys), and any registered dict refuses other keys."""
    from soc_mm.models.inference.test_options import RENAMED_KEYS, TEST_OPTION_NAMES
    from soc_mm.utils import cli
    assert cli.FIXED_KEYS['model.test_cfg'] == set(TEST_OPTION_NAMES) | set(RENAMED_KEYS)
    monkeypatch.setitem(cli.FIXED_KEYS, 'model.backbone', frozenset({'type', 'depth'}))
    cfg = _module_cfg()
    with pytest.raises(ConfigOptionError, match=re.escape("model.backbone has no key 'drop_path_rate' (its keys: "
                                                          "['depth', 'type'])")):
        merge_cfg_options(cfg, {'model.backbone.drop_path_rate': 0.1})
    merge_cfg_options(cfg, {'model.backbone.depth': 2})
    assert cfg.model.backbone.depth == 2


@pytest.mark.parametrize('key,value', [('train_cfg.max_iters', 2.5), ('train_cfg.max_iters', 2.0),
                                       ('model.test_cfg.clip_len', 1.5), ('train_cfg.val_interval', 'ten')])
def test_whole_number_settings(key, value):
    with pytest.raises(ConfigOptionError, match=re.escape(f'{key}={value!r}:')):
        merge_cfg_options(_module_cfg(), {key: value})
    cfg = _module_cfg()
    merge_cfg_options(cfg, {key: 7})
    assert _lookup_value(cfg, key) == 7


def _lookup_value(cfg, key):
    node = cfg
    for part in key.split('.'):
        node = node[part]
    return node


@pytest.mark.parametrize('train_cfg,message', [
    (dict(max_iters=0), 'train_cfg.max_iters=0: training would run no iters and leave an untrained model'),
    (dict(max_iters=-3), 'train_cfg.max_iters=-3: training would run no iters'),
    (dict(type='EpochBasedTrainLoop', max_epochs=0), 'train_cfg.max_epochs=0: training would run no epochs'),
    (dict(max_iters=2.5), 'train_cfg.max_iters=2.5: must be a whole number >= 1'),
    (dict(max_iters=2, lr=float('inf')), 'optim_wrapper.optimizer.lr=inf: must be a finite number > 0'),
    (dict(max_iters=2, lr=float('nan')), 'optim_wrapper.optimizer.lr=nan: must be a finite number > 0'),
    (dict(max_iters=2, lr=0), 'optim_wrapper.optimizer.lr=0: must be a finite number > 0'),
    (dict(max_iters=2, lr='1e-4'), "optim_wrapper.optimizer.lr='1e-4': must be a finite number > 0"),
])
def test_training_that_trains_nothing_is_refused(train_cfg, message):
    train_cfg = dict(train_cfg)
    optim = dict(optim_wrapper=dict(optimizer=dict(type='AdamW', lr=train_cfg.pop('lr')))) if 'lr' in train_cfg else {}
    with pytest.raises(ConfigOptionError, match='^' + re.escape(message)):
        check_train_length(Config(dict(train_cfg=train_cfg, **optim)))
    check_train_length(Config(dict(train_cfg=dict(max_iters=1))))
    check_train_length(Config(dict()))


# ------------------------------------------------------------------------------------------ files and launcher
def test_load_config_names_the_file(tmp_path):
    with pytest.raises(UsageError, match=f'^config {re.escape(str(tmp_path))} is a directory; expected a config '
                                         'file'):
        load_config(str(tmp_path))
    with pytest.raises(UsageError, match='^config file not found: '):
        load_config(str(tmp_path / 'nope.py'))
    bad = tmp_path / 'bad.py'
    bad.write_text('model = dict(\ntype="SOC"\nx = 1\n')
    with pytest.raises(UsageError, match=f'^config {re.escape(str(bad))} cannot be read: syntax error in '
                                         rf"{re.escape(str(bad))}, line \d+: '\(' was never closed"):
        load_config(str(bad))
    base = tmp_path / 'child.py'
    base.write_text("_base_ = ['missing_base.py']\n")
    with pytest.raises(UsageError, match=f'^config {re.escape(str(base))} cannot be read: .*missing_base'):
        load_config(str(base))
    (tmp_path / 'cfg.txt').write_text('x = 1')
    with pytest.raises(UsageError, match=r'is not a \.py, \.json or \.yaml file'):
        load_config(str(tmp_path / 'cfg.txt'))
    assert load_config(TINY_CONFIG).model.type


def test_output_paths_checked(tmp_path):
    a_file = tmp_path / 'f'
    a_file.write_text('x')
    with pytest.raises(UsageError, match=f'^--work-dir {re.escape(str(a_file))} is a file; expected a folder'):
        check_output_dir(str(a_file), '--work-dir')
    with pytest.raises(UsageError, match=rf'^--show-dir {re.escape(str(a_file))}/sub is a file \(it lies under '
                                         rf'the file {re.escape(str(a_file))}\)'):
        check_output_dir(str(a_file / 'sub'), '--show-dir')
    check_output_dir(str(tmp_path / 'new' / 'dir'), '--work-dir')
    with pytest.raises(UsageError, match=f'^--out {re.escape(str(tmp_path))} is a folder; expected a file path'):
        check_output_file(str(tmp_path), '--out')
    with pytest.raises(UsageError, match=f'^--out folder {re.escape(str(a_file))} is a file'):
        check_output_file(str(a_file / 'x.pkl'), '--out')
    check_output_file(str(tmp_path / 'new' / 'x.pkl'), '--out')
    check_output_file(None, '--out')
    fifo = tmp_path / 'out.fifo'  # writing the results would block until a reader comes, i.e. forever
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=f'^--out {re.escape(str(fifo))} exists and is not a regular file'):
        check_output_file(str(fifo), '--out')
    (tmp_path / 'link.pkl').symlink_to(fifo)  # a link is judged by what it points to
    with pytest.raises(UsageError, match='is not a regular file'):
        check_output_file(str(tmp_path / 'link.pkl'), '--out')
    check_output_file(str(a_file), '--out')  # an existing regular file is overwritten


def test_launcher_pytorch_needs_torchrun(monkeypatch):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('RANK', '0')
    with pytest.raises(UsageError, match='^--launcher pytorch: the environment lacks WORLD_SIZE, MASTER_ADDR, '
                                         'MASTER_PORT, which torchrun sets; start the tool with torchrun'):
        check_launcher_env('pytorch')
    check_launcher_env('none')
    for name, value in zip(TORCHRUN_ENV, ('0', '1', '127.0.0.1', '29500')):
        monkeypatch.setenv(name, value)
    check_launcher_env('pytorch')


def test_amp_on_cpu_is_a_clear_error(monkeypatch):
    import mmengine.device
    monkeypatch.setattr(mmengine.device, 'get_device', lambda: 'cpu')
    with pytest.raises(UsageError, match=r"^--amp needs a GPU \(MMEngine's AmpOptimWrapper .* drop --amp"):
        check_amp_device()
    monkeypatch.setattr(mmengine.device, 'get_device', lambda: 'cuda')
    check_amp_device()


# ------------------------------------------------------------------------------------------ the tools


def _format(options, tmp):
    return {k: v.format(tmp=tmp) if isinstance(v, str) else v for k, v in options.items()}


@pytest.fixture
def ckpt(tmp_path):
    import torch
    path = tmp_path / 'c.pth'
    torch.save(dict(state_dict={}), path)
    return str(path)


def test_launcher_arguments_and_local_rank(monkeypatch):
    """parse_tool_args (both tools): --launcher and --local-rank added; LOCAL_RANK from --local-rank unless the
    launcher set it."""
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    args = parse_tool_args(argparse.ArgumentParser(), ['--local-rank', '3'])
    assert args.launcher == 'none' and args.local_rank == 3 and os.environ['LOCAL_RANK'] == '3'
    monkeypatch.setenv('LOCAL_RANK', '1')  # torchrun's
    assert parse_tool_args(argparse.ArgumentParser(), ['--launcher', 'pytorch', '--local_rank', '5']).launcher == \
        'pytorch'
    assert os.environ['LOCAL_RANK'] == '1'
    with pytest.raises(SystemExit):
        parse_tool_args(argparse.ArgumentParser(), ['--launcher', 'ssh'])


def test_work_dir_from_the_option_the_config_or_the_config_name():
    cfg = Config(dict(work_dir='from_config'))
    assert set_work_dir(cfg, 'given', 'configs/x/my_cfg.py') == 'given' == cfg.work_dir
    cfg = Config(dict(work_dir='from_config'))
    assert set_work_dir(cfg, None, 'configs/x/my_cfg.py') == 'from_config'
    cfg = Config(dict(model=dict()))
    assert set_work_dir(cfg, None, 'configs/x/my_cfg.py') == osp.join('./work_dirs', 'my_cfg') == cfg.work_dir


def test_test_tool_show_dir_draws_every_sample(tmp_path, ckpt):
    show = str(tmp_path / 'show')
    cfg, checkpoint = config_for_testing(tools_test_args(ckpt, show_dir=show, work_dir=str(tmp_path / 'w')))
    assert checkpoint == dict(state_dict={}) and cfg.load_from is None and cfg.work_dir == str(tmp_path / 'w')
    assert cfg.default_hooks.visualization.interval == 1 and cfg.default_hooks.visualization.draw
    assert cfg.default_hooks.visualization.test_out_dir == show
    cfg, _ = config_for_testing(tools_test_args(ckpt, show_dir=show, work_dir=str(tmp_path / 'w'),
                                           cfg_options={'default_hooks.visualization.interval': 3}))
    assert cfg.default_hooks.visualization.interval == 3  # the user's choice stays


def test_test_tool_checks_the_work_dir_the_config_gives(tmp_path, ckpt):
    """``work_dir`` from the config or ``--cfg-options`` (no ``--work-dir``) is checked as ``--work-dir`` is."""
    (tmp_path / 'f').write_text('x')
    with pytest.raises(UsageError, match=f'^work_dir {re.escape(str(tmp_path / "f"))} is a file'):
        config_for_testing(tools_test_args(ckpt, cfg_options={'work_dir': str(tmp_path / 'f')}))


@pytest.mark.parametrize('options,message', [
    (dict(out='{tmp}/d.pkl'), '--out {tmp}/d.pkl is a folder; expected a file path'),
    (dict(out='{tmp}/f/x.pkl'), '--out folder {tmp}/f is a file'),
    (dict(out='{tmp}/x.json'), '--out must be a .pkl/.pickle file, got {tmp}/x.json'),
    (dict(show_dir='{tmp}/f'), '--show-dir {tmp}/f is a file; expected a folder'),
    (dict(work_dir='{tmp}/f'), '--work-dir {tmp}/f is a file; expected a folder'),
    (dict(launcher='pytorch'), '--launcher pytorch: the environment lacks'),
    (dict(cfg_options={'model.test_cfg.clip_lenn': 2}), "model.test_cfg has no key 'clip_lenn'; did you mean "
                                                        "'model.test_cfg.clip_len'?"),
])
def test_test_tool_refuses_before_loading_anything(tmp_path, monkeypatch, options, message):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / 'f').write_text('x')
    (tmp_path / 'd.pkl').mkdir()
    # a checkpoint that does not exist: the argument checks come first
    with pytest.raises(UsageError, match=re.escape(message.format(tmp=tmp_path))):
        config_for_testing(tools_test_args(str(tmp_path / 'missing.pth'), **_format(options, tmp_path)))


@pytest.mark.parametrize('options,message', [
    (dict(cfg_options={'train_cfg.max_iters': 0}), 'train_cfg.max_iters=0: training would run no iters'),
    (dict(cfg_options={'train_cfg.max_iters': 2.5}), 'train_cfg.max_iters=2.5: max_iters must be a whole number'),
    (dict(cfg_options={'trian_cfg.max_iters': 1}), "the config has no top-level key 'trian_cfg'; did you mean "
                                                   "'train_cfg'?"),
    (dict(work_dir='{tmp}/f'), '--work-dir {tmp}/f is a file'),
    (dict(launcher='pytorch'), '--launcher pytorch: the environment lacks'),
    (dict(auto_scale_lr=True), '--auto-scale-lr needs `auto_scale_lr.base_batch_size` in the config'),
])
def test_train_tool_refuses(tmp_path, monkeypatch, options, message):
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / 'f').write_text('x')
    options = dict(dict(work_dir=str(tmp_path / 'w')), **_format(options, tmp_path))
    with pytest.raises(UsageError, match=re.escape(message.format(tmp=tmp_path))):
        config_for_training(tools_train_args(**options))


def test_train_tool_config(tmp_path, ckpt):
    """--resume (auto: the work dir's newest; a path: that checkpoint), load_from read before the runner."""
    work = str(tmp_path / 'w')
    cfg = config_for_training(tools_train_args(work_dir=work, resume='auto', cfg_options={'train_cfg.max_iters': 3}))
    assert cfg.resume is True and cfg.load_from is None and cfg.work_dir == work and cfg.train_cfg.max_iters == 3
    assert cfg.launcher == 'none' and cfg.model_wrapper_cfg.type == 'soc_mm.RVOSDistributedDataParallel'
    cfg = config_for_training(tools_train_args(work_dir=work, resume=ckpt))
    assert cfg.resume is True and cfg.load_from == ckpt
    with pytest.raises(FileNotFoundError):  # load_from without --resume: read now
        config_for_training(tools_train_args(work_dir=work, cfg_options={'load_from': str(tmp_path / 'missing.pth')}))
    assert config_for_training(tools_train_args(work_dir=work, cfg_options={'load_from': ckpt})).load_from == ckpt
    # load_from's weights are checked before the runner starts (NaN would crash the matcher at iteration 1)
    import torch
    key = 'backbone.patch_embed.proj.weight'
    torch.save(dict(state_dict={key: torch.full((2, 3), float('nan'))}), str(tmp_path / 'nan.pth'))
    expected = re.escape(f'{tmp_path / "nan.pth"}: 1 tensor(s) cannot be used as weights')
    with pytest.raises(CheckpointValueError, match=f'(?s){expected}.*{re.escape(key)}: 6 NaN'):
        config_for_training(tools_train_args(work_dir=work, cfg_options={'load_from': str(tmp_path / 'nan.pth')}))


def test_train_tool_amp_on_cpu_and_bad_config(tmp_path, monkeypatch):
    import mmengine.device
    monkeypatch.setattr(mmengine.device, 'get_device', lambda: 'cpu')
    with pytest.raises(UsageError, match=re.escape("--amp needs a GPU (MMEngine's AmpOptimWrapper")):
        config_for_training(tools_train_args(amp=True, work_dir=str(tmp_path / 'w')))
    with pytest.raises(UsageError) as error:
        config_for_training(tools_train_args(str(tmp_path), work_dir=str(tmp_path / 'w')))
    assert str(error.value) == f'config {tmp_path} is a directory; expected a config file, e.g. ' \
                               'configs/soc/soc_tiny_synthetic.py'
    bad = tmp_path / 'bad.py'
    bad.write_text('x = (1,\n')
    with pytest.raises(UsageError, match=f'^config {re.escape(str(bad))} cannot be read: syntax error in '
                                         f'{re.escape(str(bad))}'):
        config_for_testing(tools_test_args('c.pth', config=str(bad), work_dir=str(tmp_path / 'w')))
