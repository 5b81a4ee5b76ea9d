"""Start ``tools/demo/web_demo.py`` in a subprocess on a free 127.0.0.1 port with a tiny random-weight
SOC (the demo config's sizes, the fixture text encoder), for the web demo tests."""
import os.path as osp
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np

from conftest import REPO_ROOT, TEXT_ENCODER_DIR, subprocess_env

TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')


def tiny_model_files(out_dir: str, seed: int = 0):
    """(config, checkpoint) of a tiny random-weight SOC, as tests/test_visualization's video demo test."""
    import torch
    from soc_mm.apis import init_model
    cfg_file = osp.join(out_dir, 'tiny.py')
    with open(cfg_file, 'w') as f:
        f.write(f"_base_ = ['{TINY_CONFIG}']\nmodel = dict(text_encoder=dict(model_path='{TEXT_ENCODER_DIR}'))\n")
    torch.manual_seed(seed)
    model = init_model(cfg_file, None)
    ckpt = osp.join(out_dir, 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    return cfg_file, ckpt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class WebDemoServer:
    """``python tools/demo/web_demo.py`` serving a tiny model on 127.0.0.1 (``url``; ``stop()`` ends it)."""

    def __init__(self, work_dir: str, extra_args=(), timeout: float = 240.0):
        config, checkpoint = tiny_model_files(work_dir)
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}/'
        self.temp_dir = osp.join(work_dir, 'server_tmp')
        self.log_path = osp.join(work_dir, 'server.log')
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(
            [sys.executable, osp.join(REPO_ROOT, 'tools', 'demo', 'web_demo.py'), '--config', config, '--checkpoint',
             checkpoint, '--host', '127.0.0.1', '--port', str(self.port), '--temp-dir', self.temp_dir,
             '--num-examples', '1', *extra_args],
            cwd=REPO_ROOT, env=subprocess_env(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:  # bounded: the deadline, or the server exiting
            if self.proc.poll() is not None:
                raise RuntimeError(f'the web demo exited with {self.proc.returncode}:\n{self.output()[-4000:]}')
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'the web demo did not answer within {timeout} s:\n{self.output()[-4000:]}')
            time.sleep(0.5)

    def output(self) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log.close()


def synthetic_video(path: str, seed: int = 3, num_frames: int = 6, size=(96, 128), fps: int = 5) -> np.ndarray:
    """A synthetic clip (moving coloured shapes) written to ``path`` (mp4); returns its RGB frames [T, H, W, 3]."""
    from soc_mm.datasets.synthetic import make_video
    from soc_mm.visualization import write_video
    video = make_video(np.random.default_rng(seed), num_frames, *size)
    frames = np.ascontiguousarray(video['frames'][..., ::-1])
    write_video(path, frames, fps=fps)
    return frames


def read_video(path: str) -> np.ndarray:
    """RGB frames [T, H, W, 3] of a video file (PyAV)."""
    import av
    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)])
