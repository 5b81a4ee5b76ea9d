"""keep_freed_memory_for_reuse: large tensors come from the heap (no mmap per tensor); importing
soc_mm does not change the allocator (only our tools call it)."""
import json
import platform
import subprocess
import sys

import pytest

from conftest import subprocess_env

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc mallopt')

PROBE = r'''
import ctypes, json, sys
import torch
import soc_mm
from soc_mm.utils import keep_freed_memory_for_reuse

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',
                                              'fsmblks', 'uordblks', 'fordblks', 'keepcost')]

libc = ctypes.CDLL('libc.so.6')
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory_for_reuse() if sys.argv[1] == 'tool' else None
big = torch.empty(64 * 2**20, dtype=torch.uint8)  # above glibc's largest mmap threshold (32 MB)
print(json.dumps(dict(applied=applied, mmapped=libc.mallinfo2().hblkhd)))
'''


def _probe(mode, **extra_env):
    env = subprocess_env()
    env.pop('SOC_MM_DEFAULT_MALLOC', None)
    env.update(extra_env)
    out = subprocess.run([sys.executable, '-c', PROBE, mode], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tools_keep_large_tensors_in_the_heap():
    res = _probe('tool')
    assert res['applied'] is True
    assert res['mmapped'] < 64 * 2**20  # the 64 MB tensor is not an mmap of its own


def test_importing_soc_mm_keeps_the_default_allocator():
    res = _probe('import')
    assert res['mmapped'] >= 64 * 2**20  # glibc's default: one mmap for the tensor


def test_opt_out_by_environment():
    res = _probe('tool', SOC_MM_DEFAULT_MALLOC='1')
    assert res['applied'] is False and res['mmapped'] >= 64 * 2**20
