"""RVOSLoggerHook: one writer of the test metrics json in multi-process runs."""
import json
from types import SimpleNamespace

import pytest


@pytest.mark.parametrize('rank', [0, 1])
def test_only_rank0_writes_the_test_metrics_json(tmp_path, monkeypatch, rank):
    import soc_mm.engine.hooks.logger_hook as logger_hook
    monkeypatch.setattr(logger_hook, 'is_main_process', lambda: rank == 0)
    hook = logger_hook.RVOSLoggerHook()
    hook.json_log_path = 'run.json'  # set by LoggerHook.before_run from the runner's timestamp
    record = {'rvos/J&F': 0.5, 'time': 0.125}
    logged = []
    runner = SimpleNamespace(
        log_dir=str(tmp_path), test_dataloader=[None] * 3, logger=SimpleNamespace(info=logged.append),
        log_processor=SimpleNamespace(
            get_log_after_epoch=lambda runner, n, mode, with_non_scalar=False: (dict(record), f'{mode} {n}')))
    hook.after_test_epoch(runner, {'rvos/J&F': 0.5})
    assert logged == ['test 3']  # every rank logs the metrics line
    path = tmp_path / 'run.json'
    if rank == 0:
        assert json.loads(path.read_text()) == record
    else:
        assert not path.exists()


def test_runtime_configs_use_it():
    import os.path as osp

    from conftest import REPO_ROOT
    from mmengine.config import Config
    for path in ('configs/_base_/default_runtime.py', 'configs/soc/soc_tiny_synthetic.py'):
        assert Config.fromfile(osp.join(REPO_ROOT, path)).default_hooks.logger.type == 'RVOSLoggerHook', path
