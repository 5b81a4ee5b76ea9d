"""A ``LoggerHook`` whose multi-process test runs leave a readable metrics json."""
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook

from soc_mm.registry import HOOKS


@HOOKS.register_module()
class RVOSLoggerHook(LoggerHook):
    """MMEngine's ``LoggerHook``, but only rank 0 writes ``<log_dir>/<timestamp>.json`` after testing.

    In MMEngine 0.10 every rank dumps its test record into that same file (training and validation
    go through the master-only visualizer instead). The records differ in their timings, so in a
    multi-process ``tools/test.py`` the concurrent writes can leave a file that is not valid json
    (seen with 2 CPU processes). The other ranks still log the metrics line.
    """

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():
            super().after_test_epoch(runner, metrics)
            return
        _, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.test_dataloader), 'test', with_non_scalar=True)
        runner.logger.info(log_str)
