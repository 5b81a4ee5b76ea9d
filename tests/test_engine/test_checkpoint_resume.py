"""A training run killed while it saves a checkpoint can be resumed, and ends with the same weights.

The heavy test trains the tiny SOC of ``make demo`` (configs/soc/soc_tiny_synthetic.py: dropout, random
flips, ``max_keep_ckpts=1``, iteration-based loop) on a few generated videos in 2 gloo processes through
``tools/dist_train.sh``, kills the whole run (SIGKILL) at each phase of a checkpoint save in turn
(tests/checkpoint_fault_injection.py stops the save there and signals it with a marker file), resumes it
each time with ``tools/train.py --resume`` and compares the final state dict with an uninterrupted run's,
tensor by tensor. The other tests check the fallback over damaged checkpoints and the atomic writes.
"""
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from conftest import REPO_ROOT, TESTS_DIR, subprocess_env
from soc_mm.engine import (AtomicLocalBackend, ResumeCheckpointError, check_resumable,
                           find_resume_checkpoint, resolve_resume_checkpoint)
from soc_mm.engine.atomic_io import temporary_path

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')
TEXT_ENCODER = osp.join(TESTS_DIR, 'data', 'soc_reference', 'common', 'text_encoder')
TOY_CONFIG = osp.join(TESTS_DIR, 'data', 'configs', 'toy_train.py')
MAX_ITERS, INTERVAL = 24, 4


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def dist_train(cfg_file, work_dir, *extra, marker_dir=None, pause=None, timeout=300):
    """Run ``tools/dist_train.sh cfg_file 2``. Without ``pause``: wait, return the output. With
    ``pause``: wait for the marker of that phase, SIGKILL every process of the run, return the output."""
    env = subprocess_env()
    env.update(PYTHON=sys.executable, PORT=str(free_port()), PYTHONUNBUFFERED='1')
    cmd = ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), cfg_file, '2', '--work-dir', work_dir, *extra]
    log_path = osp.join(osp.dirname(work_dir), f'log_{time.monotonic_ns()}.txt')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            if pause is None:
                proc.wait(timeout=timeout)
            else:
                marker = osp.join(marker_dir, pause)
                deadline = time.monotonic() + timeout
                while not osp.exists(marker):
                    assert proc.poll() is None, f'the run ended before {pause}:\n' + open(log_path).read()[-4000:]
                    assert time.monotonic() < deadline, f'no {pause} marker after {timeout} s'
                    time.sleep(0.1)
                # the launcher's group, then each worker (torchrun gives each a session of its own)
                os.killpg(proc.pid, signal.SIGKILL)
                for rank in (0, 1):
                    with open(osp.join(marker_dir, f'pgid_rank{rank}')) as f:
                        pgid = int(f.read())
                    try:
                        os.killpg(pgid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    while True:  # gone (reaped by init) before the files are looked at
                        try:
                            os.killpg(pgid, 0)
                        except ProcessLookupError:
                            break
                        time.sleep(0.05)
                proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    with open(log_path) as f:
        out = f.read()
    if pause is None:
        assert proc.returncode == 0, out[-5000:]
    return out


@pytest.fixture(scope='module')
def tiny_soc(tmp_path_factory):
    """The ``make demo`` config on 4 generated 32x32 videos, 24 iterations, a checkpoint every 4."""
    from soc_mm.datasets import synthetic
    root = tmp_path_factory.mktemp('ckpt_resume')
    data_root = str(root / 'data') + '/'
    synthetic.generate_ref_youtube_vos(data_root, num_train=4, num_valid=1, num_test=0, num_frames=4,
                                       size=(32, 32), seed=0)
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.test_dataloader.dataset.data_root = data_root
    cfg.model.text_encoder.model_path = TEXT_ENCODER
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = MAX_ITERS
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
        dict(type='CosineAnnealingLR', T_max=MAX_ITERS - 4, eta_min=1e-5, by_epoch=False, begin=4, end=MAX_ITERS)]
    cfg.default_hooks.checkpoint.interval = INTERVAL
    cfg.default_hooks.logger.interval = 4
    cfg.custom_imports.imports = list(cfg.custom_imports.imports) + ['checkpoint_fault_injection']
    assert cfg.default_hooks.checkpoint.max_keep_ckpts == 1  # the demo's setting: one checkpoint kept
    assert any(h.type == 'IterationSeedHook' for h in cfg.custom_hooks)
    cfg_file = str(root / 'tiny_soc.py')
    cfg.dump(cfg_file)
    return root, cfg_file


def pausing_config(root, base_file, phase, step):
    marker_dir = root / f'markers_{phase}'
    marker_dir.mkdir()
    cfg_file = root / f'pause_{phase}.py'
    cfg_file.write_text(
        f'_base_ = [{base_file!r}]\n'
        f"default_hooks = dict(checkpoint=dict(type='PausingCheckpointHook', pause_phase={phase!r}, "
        f"pause_file='iter_{step}.pth', marker_dir={str(marker_dir)!r}))\n")
    return str(cfg_file), str(marker_dir)


def listing(work_dir):
    return sorted(n for n in os.listdir(work_dir) if n.endswith(('.pth', '.tmp')))


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return osp.basename(f.read().strip())


def test_killed_during_checkpoint_saves_then_resumed_ends_with_same_weights(tiny_soc):
    root, cfg_file = tiny_soc
    full_dir = str(root / 'full')
    out = dist_train(cfg_file, full_dir)
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in out
    assert listing(full_dir) == [f'iter_{MAX_ITERS}.pth'] and last_checkpoint(full_dir) == f'iter_{MAX_ITERS}.pth'
    expected = torch.load(osp.join(full_dir, f'iter_{MAX_ITERS}.pth'), weights_only=True)['state_dict']

    work = str(root / 'killed')
    # kill 1: half of iter_8.pth written to its temporary file
    cfg, markers = pausing_config(root, cfg_file, 'mid_write', 8)
    dist_train(cfg, work, marker_dir=markers, pause='mid_write')
    tmp = temporary_path(osp.join(work, 'iter_8.pth'))
    assert listing(work) == ['.iter_8.pth.tmp', 'iter_4.pth'] and last_checkpoint(work) == 'iter_4.pth'
    assert 0 < osp.getsize(tmp) < osp.getsize(osp.join(work, 'iter_4.pth'))
    assert check_resumable(tmp) is not None  # a truncated checkpoint indeed
    at_iter_4 = torch.load(osp.join(work, 'iter_4.pth'), weights_only=True)['state_dict']

    # kill 2: iter_12.pth complete in its temporary file, not renamed
    cfg, markers = pausing_config(root, cfg_file, 'tmp_written', 12)
    out = dist_train(cfg, work, '--resume', marker_dir=markers, pause='tmp_written')
    assert f'--resume: resuming from {work}/iter_4.pth (named by {work}/last_checkpoint).' in out
    assert f'Removed {tmp}, the unfinished write of a previous run.' in out
    assert listing(work) == ['.iter_12.pth.tmp', 'iter_8.pth'] and last_checkpoint(work) == 'iter_8.pth'
    assert check_resumable(temporary_path(osp.join(work, 'iter_12.pth'))) is None

    # kill 3: iter_16.pth renamed into place, last_checkpoint not yet updated
    cfg, markers = pausing_config(root, cfg_file, 'renamed', 16)
    out = dist_train(cfg, work, '--resume', marker_dir=markers, pause='renamed')
    assert f'--resume: resuming from {work}/iter_8.pth' in out
    assert listing(work) == ['iter_12.pth', 'iter_16.pth'] and last_checkpoint(work) == 'iter_12.pth'

    # kill 4: last_checkpoint names iter_20.pth, the outdated iter_16.pth is not removed yet
    cfg, markers = pausing_config(root, cfg_file, 'last_checkpoint', 20)
    out = dist_train(cfg, work, '--resume', marker_dir=markers, pause='last_checkpoint')
    assert f'--resume: resuming from {work}/iter_12.pth' in out
    assert listing(work) == ['iter_16.pth', 'iter_20.pth'] and last_checkpoint(work) == 'iter_20.pth'

    # resume to the end: iter_16.pth (dropped by the save of iter_20.pth) goes, as max_keep_ckpts=1 says
    out = dist_train(cfg_file, work, '--resume')
    assert f'--resume: resuming from {work}/iter_20.pth' in out
    assert f'Removed the outdated checkpoint {work}/iter_16.pth' in out
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in out
    assert listing(work) == [f'iter_{MAX_ITERS}.pth'] and last_checkpoint(work) == f'iter_{MAX_ITERS}.pth'
    resumed = torch.load(osp.join(work, f'iter_{MAX_ITERS}.pth'), weights_only=True)['state_dict']
    assert resumed.keys() == expected.keys()
    differ = [k for k in expected if not torch.equal(resumed[k], expected[k])]
    assert not differ, f'{len(differ)} of {len(expected)} tensors differ, e.g. {differ[:5]}'
    # and the comparison can fail: training moved the weights since iter_4
    assert any(not torch.equal(at_iter_4[k], expected[k]) for k in expected)


# ------------------------------------------------------------------ damaged checkpoints (toy model)
@pytest.fixture(scope='module')
def toy_run(tmp_path_factory):
    """A finished 3-epoch toy run (one process): epoch_1.pth .. epoch_3.pth, last_checkpoint -> epoch_3."""
    from mmengine.runner import Runner
    work_dir = str(tmp_path_factory.mktemp('toy') / 'run')
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.work_dir = work_dir
    cfg.train_cfg.max_epochs = 3
    cfg.default_hooks.logger.interval = 8
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert listing(work_dir) == ['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth']
    assert last_checkpoint(work_dir) == 'epoch_3.pth'
    return work_dir


def copy_run(src, dst):
    shutil.copytree(src, dst, copy_function=shutil.copy2)  # keeps the modification times (newest = epoch_3)
    with open(osp.join(dst, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(dst, 'epoch_3.pth'))
    return str(dst)


def truncate(path, keep):
    size = osp.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(keep(size))


@pytest.mark.parametrize('damage, reason', [
    ('truncated', 'unreadable, truncated or not a checkpoint'),
    ('empty', 'empty file (0 bytes)'),
    ('missing', 'the file does not exist'),
])
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(toy_run, tmp_path, damage, reason):
    work = copy_run(toy_run, tmp_path / 'run')
    latest = osp.join(work, 'epoch_3.pth')
    if damage == 'missing':  # last_checkpoint names a file that is gone
        os.remove(latest)
    else:
        truncate(latest, (lambda size: size // 2) if damage == 'truncated' else (lambda size: 0))
    messages = []
    assert find_resume_checkpoint(work, log=messages.append) == osp.join(work, 'epoch_2.pth')
    pointer = osp.join(work, 'last_checkpoint')
    assert messages[0].startswith(f'--resume: skipped {latest} (named by {pointer}): {reason}')
    assert messages[1:] == [f'--resume: resuming from {work}/epoch_2.pth (newest *.pth), '
                            'the newest complete checkpoint.']


def test_auto_resume_skips_damaged_and_evaluation_checkpoints_until_none_is_left(toy_run, tmp_path):
    work = copy_run(toy_run, tmp_path / 'run')
    # a newer checkpoint without optimizer state (as the save_best ones) is not resumed from
    ckpt = torch.load(osp.join(work, 'epoch_3.pth'), weights_only=True)
    ckpt.pop('optimizer')
    best = osp.join(work, 'best_loss_epoch_3.pth')
    torch.save(ckpt, best)
    truncate(osp.join(work, 'epoch_3.pth'), lambda size: size - 100)
    messages = []
    assert find_resume_checkpoint(work, log=messages.append) == osp.join(work, 'epoch_2.pth')
    assert messages[1] == (f'--resume: skipped {best} (newest *.pth): no optimizer state (saved for '
                           'evaluation, e.g. a best checkpoint)')
    for name in ('epoch_2.pth', 'epoch_1.pth'):
        truncate(osp.join(work, name), lambda size: 0)
    with pytest.raises(ResumeCheckpointError) as err:
        find_resume_checkpoint(work, log=messages.append)
    text = str(err.value)
    assert text.startswith(f'--resume: no complete checkpoint to resume from in {work}:\n')
    assert f'  skipped {work}/epoch_1.pth (newest *.pth): empty file (0 bytes)\n' in text
    assert text.count('  skipped ') == 4 and 'train without --resume' in text
    # an empty work dir (no last_checkpoint, no *.pth): an error too, not a silent fresh start
    with pytest.raises(ResumeCheckpointError, match='no .*last_checkpoint and no \\*.pth file in'):
        find_resume_checkpoint(str(tmp_path), log=messages.append)


@pytest.mark.parametrize('content, reason', [
    (bytes(range(128, 256)) * 4, 'binary data'),
    (b'/some/where/iter_4.pth\x00garbage', 'is not one line naming a checkpoint file'),
    (b'x' * 5000, 'more than 4096 bytes'),
])
def test_garbage_last_checkpoint_is_skipped_naming_it(toy_run, tmp_path, content, reason):
    work = copy_run(toy_run, tmp_path / 'run')
    pointer = osp.join(work, 'last_checkpoint')
    with open(pointer, 'wb') as f:
        f.write(content)
    messages = []
    assert find_resume_checkpoint(work, log=messages.append) == osp.join(work, 'epoch_3.pth')
    assert messages[0].startswith(f'--resume: skipped {pointer}: ') and reason in messages[0], messages


def toy_train(*args):
    """``tools/train.py`` on the toy config in one process (4 epochs); returns (exit status, output)."""
    cfg_file = osp.join(osp.dirname(args[1]), 'toy_4_epochs.py')
    with open(cfg_file, 'w') as f:
        f.write(f'_base_ = [{TOY_CONFIG!r}]\ntrain_cfg = dict(max_epochs=4)\n')
    proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), cfg_file, *args],
                          cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_train_resume_falls_back_and_resume_path_to_damaged_file_fails(toy_run, tmp_path):
    work = copy_run(toy_run, tmp_path / 'run')
    truncate(osp.join(work, 'epoch_3.pth'), lambda size: size // 3)
    status, out = toy_train('--work-dir', work, '--resume')
    assert status == 0, out[-3000:]
    assert f'--resume: skipped {work}/epoch_3.pth (named by {work}/last_checkpoint): unreadable' in out
    assert f'--resume: resuming from {work}/epoch_2.pth (newest *.pth), the newest complete checkpoint.' in out
    assert 'resumed epoch: 2' in out
    assert torch.load(osp.join(work, 'epoch_4.pth'), weights_only=True)['meta']['epoch'] == 4

    empty = osp.join(work, 'empty.pth')
    open(empty, 'wb').close()
    status, out = toy_train('--work-dir', work, '--resume', empty)
    assert status != 0
    assert f'--resume {empty}: cannot resume from this file: empty file (0 bytes).' in out


def test_resolve_resume_checkpoint_sets_load_from(toy_run, tmp_path):
    work = copy_run(toy_run, tmp_path / 'run')
    cfg = Config(dict(work_dir=work, resume=True, load_from=None))
    assert resolve_resume_checkpoint(cfg, log=lambda _: None) == osp.join(work, 'epoch_3.pth')
    assert cfg.load_from == osp.join(work, 'epoch_3.pth')
    assert resolve_resume_checkpoint(Config(dict(work_dir=work, resume=False, load_from=None))) is None
    truncated = osp.join(work, 'epoch_1.pth')
    truncate(truncated, lambda size: size - 1)
    with pytest.raises(ResumeCheckpointError, match=f'--resume {truncated}: cannot resume from this file: '
                       'unreadable, truncated or not a checkpoint'):
        resolve_resume_checkpoint(Config(dict(work_dir=work, resume=True, load_from=truncated)))


def test_resume_refuses_a_finished_schedule_and_damaged_progress(toy_run, tmp_path):
    """A checkpoint at or past max_epochs / max_iters would resume into nothing (MMEngine skips meta.iter
    batches and exits 0, saving nothing); meta.iter / meta.epoch / message_hub of the wrong type are named."""
    work = copy_run(toy_run, tmp_path / 'run')
    done = osp.join(work, 'epoch_3.pth')
    ckpt = torch.load(done, weights_only=False)
    iters = ckpt['meta']['iter']
    for train_cfg, message in ((dict(max_epochs=3), 'at epoch 3 (meta.epoch), at or past train_cfg.max_epochs=3'),
                               (dict(max_iters=iters), f'at iter {iters} (meta.iter), at or past '
                                f'train_cfg.max_iters={iters}')):
        for load_from in (done, None):  # --resume PATH and auto-resume (epoch_3 is the newest)
            cfg = Config(dict(work_dir=work, resume=True, load_from=load_from, train_cfg=train_cfg))
            with pytest.raises(ResumeCheckpointError, match=re.escape(f'--resume {done}: the checkpoint is {message}')):
                resolve_resume_checkpoint(cfg, log=lambda _: None)
    cfg = Config(dict(work_dir=work, resume=True, load_from=None, train_cfg=dict(max_epochs=4)))
    assert resolve_resume_checkpoint(cfg, log=lambda _: None) == done
    for change, reason in ((dict(meta=dict(ckpt['meta'], iter='24')), "meta.iter is '24', expected an integer >= 0"),
                           (dict(meta=dict(ckpt['meta'], epoch=-1)), 'meta.epoch is -1, expected an integer >= 0'),
                           (dict(message_hub=5), "'message_hub' is a int, expected the dict")):
        path = str(tmp_path / 'changed.pth')
        torch.save(dict(ckpt, **change), path)
        with pytest.raises(ResumeCheckpointError, match=re.escape(reason)):
            resolve_resume_checkpoint(Config(dict(work_dir=work, resume=True, load_from=path)))


# ------------------------------------------------------------------ atomic writes
class FailingBackend(AtomicLocalBackend):
    """Dies after half of the data, as a killed writer would."""

    def _write_temporary(self, data, tmp_path, filepath):
        with open(tmp_path, 'wb') as f:
            f.write(data[:len(data) // 2])
        raise KeyboardInterrupt


def test_atomic_put_keeps_the_old_file_when_the_write_dies(tmp_path):
    target = str(tmp_path / 'iter_4.pth')
    AtomicLocalBackend().put(b'old complete content', target)
    with pytest.raises(KeyboardInterrupt):
        FailingBackend().put(b'new content that never lands', target)
    assert open(target, 'rb').read() == b'old complete content'
    assert os.listdir(tmp_path) == ['iter_4.pth']  # no temporary left behind
    AtomicLocalBackend().put_text('new', target)
    assert open(target).read() == 'new' and os.listdir(tmp_path) == ['iter_4.pth']


def test_periodic_best_and_last_checkpoint_files_are_all_written_atomically(tmp_path, monkeypatch):
    """Every file the hook writes (periodic, ``save_best`` and ``last_checkpoint``) is renamed into place
    complete, and an outdated checkpoint goes only after ``last_checkpoint`` names the new one."""
    events = []
    replace = AtomicLocalBackend._replace

    def spy_replace(self, tmp_path_, filepath):
        events.append(('complete', osp.basename(filepath), torch.load(tmp_path_, weights_only=True)
                       if filepath.endswith('.pth') else open(tmp_path_).read()))
        replace(self, tmp_path_, filepath)
    monkeypatch.setattr(AtomicLocalBackend, '_replace', spy_replace)
    remove = AtomicLocalBackend.remove
    monkeypatch.setattr(AtomicLocalBackend, 'remove',
                        lambda self, path: (events.append(('removed', osp.basename(path), None)), remove(self, path)))

    _rising_accuracy_run(str(tmp_path), max_epochs=2).train()
    order = [(kind, name if name != 'last_checkpoint' else f'last_checkpoint -> {osp.basename(content)}')
             for kind, name, content in events]
    assert order == [
        ('complete', 'epoch_1.pth'), ('complete', 'last_checkpoint -> epoch_1.pth'),
        ('complete', 'best_acc_epoch_1.pth'),
        ('complete', 'epoch_1.pth'), ('complete', 'last_checkpoint -> epoch_1.pth'),  # with the best's path
        ('complete', 'epoch_2.pth'), ('complete', 'last_checkpoint -> epoch_2.pth'), ('removed', 'epoch_1.pth'),
        ('complete', 'best_acc_epoch_2.pth'),  # the previous best is removed only after the new one is complete
        ('complete', 'epoch_2.pth'), ('complete', 'last_checkpoint -> epoch_2.pth'),
        ('removed', 'best_acc_epoch_1.pth')]
    # the checkpoint that drops epoch_1 records it, so that a run resumed from it finishes the removal
    saved = [content for kind, name, content in events if name == 'epoch_2.pth']
    assert saved[0]['message_hub']['runtime_info']['outdated_ckpt_ids'] == [1]
    assert saved[0]['message_hub']['runtime_info']['keep_ckpt_ids'] == [2]
    assert listing(str(tmp_path)) == ['best_acc_epoch_2.pth', 'epoch_2.pth']


# ------------------------------------------------------------------ --resume is strict
@pytest.mark.parametrize('change, expected', [
    ('missing', ['missing keys in source state_dict: linear.bias']),
    ('unexpected', ['unexpected key in source state_dict: head.weight']),
    ('nan', ['linear.weight: 1 NaN and 0 inf of 4 values']),
])
def test_resume_from_a_checkpoint_that_does_not_fit_fails_naming_the_keys(toy_run, tmp_path, change, expected):
    """MMEngine resumes non-strictly (missing weights would train from their initial values): ours must
    be strict like tools/test.py, and refuse NaN weights."""
    work = copy_run(toy_run, tmp_path / 'run')
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), weights_only=True)
    if change == 'missing':
        del ckpt['state_dict']['linear.bias']
    elif change == 'unexpected':
        ckpt['state_dict']['head.weight'] = torch.zeros(2, 2)
    else:
        ckpt['state_dict']['linear.weight'][0, 1] = float('nan')
    path = osp.join(str(tmp_path), f'{change}.pth')
    torch.save(ckpt, path)
    status, out = toy_train('--work-dir', work, '--resume', path)
    assert status != 0 and 'tools/train.py: error:' in out and path in out, out[-3000:]
    assert 'Traceback' not in out, out[-3000:]
    for text in expected:
        assert text in out, out[-3000:]
    assert 'resumed epoch' not in out and not osp.exists(osp.join(work, 'epoch_4.pth'))


# ------------------------------------------------------------------ save_best: the previous best stays
def _rising_accuracy_run(work_dir, max_epochs, resume_from=None):
    """The toy config with ``save_best='acc'`` and an accuracy that rises every validation (from 1 in each
    runner), resumed from ``resume_from`` if given."""
    from mmengine.evaluator import BaseMetric
    from mmengine.runner import Runner

    from soc_mm.registry import METRICS

    @METRICS.register_module(force=True)
    class RisingAccuracy(BaseMetric):
        def process(self, data_batch, data_samples):
            pass

        def compute_metrics(self, results):
            self.calls = getattr(self, 'calls', 0) + 1
            return dict(acc=float(self.calls))

    cfg = Config.fromfile(TOY_CONFIG)
    cfg.work_dir = work_dir
    # a message hub of its own (runners made within one second would share one, with its best score)
    cfg.experiment_name = f'rising_accuracy_{time.monotonic_ns()}'
    cfg.train_cfg.max_epochs = max_epochs
    cfg.default_hooks.checkpoint.update(save_best='acc', rule='greater', max_keep_ckpts=1)
    cfg.default_hooks.logger.interval = 8
    cfg.val_dataloader, cfg.val_cfg, cfg.val_evaluator = cfg.train_dataloader, dict(type='ValLoop'), \
        dict(type='RisingAccuracy')
    if resume_from:
        cfg.resume, cfg.load_from = True, resume_from
    return Runner.from_cfg(cfg)


@pytest.mark.parametrize('crash', ['mid_write', 'renamed', 'before_removal'])
def test_previous_best_checkpoint_stays_until_the_new_one_is_complete(tmp_path, monkeypatch, crash):
    """A kill while the new best checkpoint is written (half of it in its temporary file), just after it
    is renamed into place, or just before the previous best is removed: the previous best is still
    there and complete (MMEngine removed it first: a kill left no best checkpoint)."""
    from soc_mm.engine.hooks import AtomicCheckpointHook
    new_best = 'best_acc_epoch_2.pth'
    write, replace = AtomicLocalBackend._write_temporary, AtomicLocalBackend._replace

    def crashing_write(self, data, tmp_path_, filepath):
        if crash == 'mid_write' and osp.basename(filepath) == new_best:
            with open(tmp_path_, 'wb') as f:
                f.write(data[:len(data) // 2])
            raise KeyboardInterrupt
        write(self, data, tmp_path_, filepath)

    def crashing_replace(self, tmp_path_, filepath):
        replace(self, tmp_path_, filepath)
        if crash == 'renamed' and osp.basename(filepath) == new_best:
            raise KeyboardInterrupt

    remove_paths = getattr(AtomicCheckpointHook, '_remove_paths', None)

    def crashing_remove(self, runner, paths, message):
        if crash == 'before_removal' and any(osp.basename(p) == 'best_acc_epoch_1.pth' for p in paths):
            raise KeyboardInterrupt
        remove_paths(self, runner, paths, message)

    work = str(tmp_path / 'run')
    with monkeypatch.context() as patch:
        patch.setattr(AtomicLocalBackend, '_write_temporary', crashing_write)
        patch.setattr(AtomicLocalBackend, '_replace', crashing_replace)
        patch.setattr(AtomicCheckpointHook, '_remove_paths', crashing_remove, raising=False)
        with pytest.raises(KeyboardInterrupt):
            _rising_accuracy_run(work, max_epochs=2).train()
    previous = osp.join(work, 'best_acc_epoch_1.pth')
    assert osp.isfile(previous), listing(work)
    best = torch.load(previous, weights_only=True)
    assert best['meta']['epoch'] == 1 and best['state_dict'].keys() == {'linear.weight', 'linear.bias'}
    assert osp.isfile(osp.join(work, new_best)) == (crash != 'mid_write'), listing(work)
    if crash == 'before_removal':
        # the periodic checkpoint saved after the new best records the replaced one: resuming removes it
        hub = torch.load(osp.join(work, 'epoch_2.pth'), weights_only=True)['message_hub']['runtime_info']
        assert hub['best_ckpt'] == osp.join(work, new_best) and hub['outdated_best_ckpts'] == [previous]
        _rising_accuracy_run(work, max_epochs=3, resume_from=osp.join(work, 'epoch_2.pth')).train()
        assert not osp.exists(previous) and osp.isfile(osp.join(work, new_best)), listing(work)
