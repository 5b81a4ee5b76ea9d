"""No checkpoint a user hands us can run code; bad and wrong checkpoints are refused by name.

The malicious corpus (``malicious_checkpoints.py``: os.system reduces, a custom class, getattr
chains to eval/exec/__import__, __globals__/__builtins__ writes, protocol 0/4/5 pickles, zip and
legacy containers) goes through every loading path: ``safe_load_local``, MMEngine's loader as our
tools install it, torch/MMEngine's own loaders in a process that imported soc_mm (other OpenMMLab
projects), what ``tools/test.py`` and ``tools/train.py`` (``--resume`` and ``load_from``) run
(``soc_mm.utils.launch``, ``soc_mm.engine.resume``, ``load_checkpoint_to_model``; each tool once as a
subprocess), ``init_model`` and the official-checkpoint converter (``soc_mm.official.convert``). Each
must be refused naming the offending global, create no marker file and change no global.
"""
import ast
import collections
import io
import os
import os.path as osp
import pickle
import re
import subprocess
import sys
import zipfile

import pytest
import torch

import malicious_checkpoints as corpus
import soc_mm  # noqa: F401  (allow-lists MMEngine's checkpoint types, as for any importer)
from conftest import REPO_ROOT, TEXT_ENCODER_DIR, run_python, subprocess_env, tools_test_args, tools_train_args
from soc_mm.engine import ResumeCheckpointError, resolve_resume_checkpoint
from soc_mm.official.convert import ConversionError, convert_official_checkpoint
from soc_mm.utils.checkpoint import (CheckpointFormatError, CheckpointMismatchError, CheckpointValueError,
                                     UnsafeCheckpointError, check_state_dict_values, load_checkpoint_to_model,
                                     safe_load_local)
from soc_mm.utils.launch import config_for_testing, config_for_training

#: the global each payload's refusal must name
EXPECTED_GLOBAL = {
    'os_system_reduce': 'os.system', 'posix_system_reduce': 'posix.system',
    'subprocess_popen': 'subprocess.check_call', 'eval_through_rebuild': 'builtins.eval',
    'custom_class_setstate': 'malicious_checkpoints.Evil', 'protocol0_inst': 'os.system',
    'protocol4_stack_global': 'os.system', 'protocol5_stack_global_memo': 'builtins.eval',
    'hidden_in_mmengine_checkpoint': 'os.system',
    **{name: 'builtins.getattr' for name in corpus.GETATTR_PAYLOADS},
    # these reach getattr through _rebuild_from_type_v2, which calls its first argument: refused by the scan
    **{name: 'torch._tensor._rebuild_from_type_v2' for name in (
        'getattr_chain_eval', 'getattr_chain_exec', 'getattr_chain_import_os_system',
        'getattr_history_buffer_register_statistics')}}
TINY_CONFIG = osp.join(REPO_ROOT, 'configs', 'soc', 'soc_tiny_synthetic.py')
TEXT_ENCODER = TEXT_ENCODER_DIR


@pytest.fixture(scope='module')
def rows(tmp_path_factory):
    return corpus.build_corpus(str(tmp_path_factory.mktemp('malicious')))


def _assert_nothing_ran(rows):
    ran = [name for _path, marker, name in rows if osp.exists(marker)]
    assert not ran, f'payloads ran: {ran}'
    assert corpus.planted_globals() == []


def test_corpus_is_potent(tmp_path):
    """Loaded unsafely (plain pickle; the generic getattr allow-listed) every payload runs or plants a global.

    So the refusals below are meaningful: a loader that let any of these through would fail them.
    """
    code = (
        'import os, sys, torch, malicious_checkpoints as corpus\n'
        'from mmengine.logging import HistoryBuffer\n'
        'torch.serialization.add_safe_globals([getattr, HistoryBuffer])\n'
        'rows = corpus.build_corpus(sys.argv[1])\n'
        'effects = []\n'
        'for path, marker, name in rows:\n'
        '    try:\n'
        '        torch.load(path, weights_only=name in corpus.GETATTR_PAYLOADS)\n'
        '    except Exception:\n'
        '        pass\n'
        '    if os.path.exists(marker):\n'
        '        effects.append(os.path.basename(path))\n'
        'print("RAN", sorted(effects))\n'
        'print("PLANTED", corpus.planted_globals())\n')
    proc = run_python(code, tmp_path, timeout=120)
    ran = eval(proc.stdout.split('RAN ', 1)[1].splitlines()[0])  # noqa: S307 (our own printed list)
    planted = proc.stdout.split('PLANTED ', 1)[1]
    runners = [n for n in corpus.PAYLOADS if n not in corpus.PROBES and 'history_buffer' not in n]
    assert ran == sorted(f'{n}.{c}.pth' for n in runners for c in ('zip', 'legacy'))
    assert "'builtins'" in planted and "'mmengine.logging.history_buffer'" in planted
    assert 'HistoryBuffer._statistics_methods gained' in planted


def test_safe_load_local_refuses_the_corpus_by_name(rows):
    for path, _marker, name in rows:
        with pytest.raises(UnsafeCheckpointError) as info:
            safe_load_local(path)
        message = str(info.value)
        assert EXPECTED_GLOBAL[name] in message, (name, message)
        assert path in message
    _assert_nothing_ran(rows)


def test_other_projects_loaders_refuse_the_corpus_after_import(rows):
    """What ``import soc_mm`` adds to torch's allow-list cannot be abused through torch/MMEngine's own loaders."""
    from mmengine.runner import load_checkpoint
    model = torch.nn.Linear(2, 2)
    for path, _marker, name in rows:
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
        with pytest.raises(pickle.UnpicklingError):
            load_checkpoint(model, path)
    _assert_nothing_ran(rows)


def test_allow_list_is_exact_whatever_else_the_process_allowed(rows):
    """Someone else's ``add_safe_globals([getattr, eval])`` does not open our loader."""
    chains = [r for r in rows if r[2] in corpus.GETATTR_PAYLOADS]
    with torch.serialization.safe_globals([getattr, eval]):
        for path, _marker, _name in chains:
            with pytest.raises(UnsafeCheckpointError, match=EXPECTED_GLOBAL[_name]):
                safe_load_local(path)
        assert getattr in torch.serialization.get_safe_globals()  # restored after each load
    _assert_nothing_ran(chains)


@pytest.fixture
def mmengine_safe_scheme():
    """Install our loader into MMEngine's CheckpointLoader as the tools do; restore MMEngine's after."""
    from mmengine.runner.checkpoint import CheckpointLoader
    from soc_mm.utils import install_safe_checkpoint_loading
    saved = dict(CheckpointLoader._schemes)
    install_safe_checkpoint_loading()
    yield
    CheckpointLoader._schemes.clear()
    CheckpointLoader._schemes.update(saved)


def test_runner_loader_as_our_tools_install_it_refuses_the_corpus(rows, mmengine_safe_scheme):
    from mmengine.runner.checkpoint import CheckpointLoader
    for path, _marker, name in rows:
        with pytest.raises(UnsafeCheckpointError, match=EXPECTED_GLOBAL[name].replace('.', r'\.')):
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
    _assert_nothing_ran(rows)


def test_import_leaves_mmengine_checkpoint_loaders_as_they_were():
    code = ('from mmengine.runner.checkpoint import CheckpointLoader\n'
            'before = dict(CheckpointLoader._schemes)\n'
            'import soc_mm, soc_mm.models, soc_mm.apis\n'
            'after = dict(CheckpointLoader._schemes)\n'
            'print("SAME", before.keys() == after.keys() and all(before[k] is after[k] for k in before))\n')
    proc = run_python(code, timeout=120)
    assert 'SAME True' in proc.stdout


# ------------------------------------------------------------------ real checkpoints still load
def _mmengine_like_checkpoint(path):
    """What MMEngine's runner saves: weights, meta, a message hub of HistoryBuffers, numpy values."""
    import numpy as np
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('soc_mm_checkpoint_safety')
    for value in (1.0, 2.0, 4.0):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', np.int64(3))
    model = torch.nn.Linear(3, 2)
    torch.save(dict(meta=dict(epoch=1, seed=np.int64(7), arr=np.arange(3)), state_dict=model.state_dict(),
                    message_hub=hub.state_dict(), optimizer=torch.optim.AdamW(model.parameters()).state_dict()),
               path)
    return model


def test_mmengine_checkpoints_load_and_keep_their_statistics(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    model = _mmengine_like_checkpoint(path)
    for loaded in (safe_load_local(path), torch.load(path)):  # ours, and torch's default after import
        buffer = loaded['message_hub']['log_scalars']['train/loss']
        assert buffer.mean() == pytest.approx(7 / 3) and buffer.current() == 4.0
        assert loaded['meta']['seed'] == 7 and list(loaded['meta']['arr']) == [0, 1, 2]
        assert torch.equal(loaded['state_dict']['weight'], model.weight)


def test_harmless_but_unlisted_class_is_refused_by_name(tmp_path):
    import fractions
    path = str(tmp_path / 'fraction.pth')
    torch.save(dict(state_dict={}, meta=dict(x=fractions.Fraction(1, 3))), path)
    with pytest.raises(UnsafeCheckpointError, match=r"fractions\.Fraction"):
        safe_load_local(path)


# ------------------------------------------------------------------ files that are no checkpoint
@pytest.mark.parametrize('kind', ['empty', 'text', 'random', 'truncated_zip', 'truncated_legacy', 'json'])
def test_non_checkpoint_files_get_a_clear_error(tmp_path, kind):
    path = str(tmp_path / f'{kind}.pth')
    if kind == 'empty':
        open(path, 'wb').close()
        expected = 'empty file'
    elif kind == 'text':
        open(path, 'w').write('this is not a checkpoint\n')
        expected = 'not a PyTorch checkpoint'
    elif kind == 'random':
        open(path, 'wb').write(os.urandom(4096))
        expected = 'not a PyTorch checkpoint'
    elif kind == 'json':
        open(path, 'w').write('{"state_dict": {}}')
        expected = 'not a PyTorch checkpoint'
    else:
        buf = io.BytesIO()
        torch.save(dict(state_dict=dict(w=torch.randn(64, 64))), buf,
                   _use_new_zipfile_serialization=kind == 'truncated_zip')
        open(path, 'wb').write(buf.getvalue()[:len(buf.getvalue()) // 2])
        expected = 'damaged checkpoint'
    with pytest.raises(CheckpointFormatError, match=expected) as info:
        safe_load_local(path)
    assert path in str(info.value)


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        safe_load_local(str(tmp_path / 'nowhere.pth'))


def test_fifo_or_directory_is_not_a_file_and_never_waits(tmp_path):
    """A FIFO given as a checkpoint would block a plain open() until a writer comes: opened without waiting."""
    fifo = str(tmp_path / 'fifo.pth')
    os.mkfifo(fifo)
    for path in (fifo, str(tmp_path)):
        with pytest.raises(CheckpointFormatError, match='not a file') as info:
            safe_load_local(path)
        assert path in str(info.value)


def test_what_is_checked_is_what_is_loaded(tmp_path, monkeypatch):
    """The checks and torch.load read one open file, and a file that changes meanwhile is refused: a path
    replaced after the checks by a deflate bomb the checks would refuse (nothing is inflated), a file
    written in place (its time stamps set back)."""
    import zlib

    import soc_mm.utils.checkpoint as checkpoint_module
    path, bomb = str(tmp_path / 'model.pth'), str(tmp_path / 'bomb.pth')
    weights = dict(w=torch.randn(8, 8))
    torch.save(dict(state_dict=weights), path)
    corpus.write_compressed_bomb(bomb, 4 << 20, member='data/0')
    scan = checkpoint_module.unsafe_globals_in_checkpoint

    def scan_then_replace(filename, f=None):
        found = scan(filename, f)
        os.replace(bomb, filename)
        return found

    def scan_then_write_in_place(filename, f=None):
        found = scan(filename, f)
        stat = os.stat(filename)
        with open(filename, 'r+b') as out:
            first = out.read(1)
            out.seek(0)
            out.write(first)  # the same byte: only the status-change time tells
        os.utime(filename, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # size and mtime as before
        return found

    for change in (scan_then_replace, scan_then_write_in_place):
        with monkeypatch.context() as patch:
            patch.setattr(checkpoint_module, 'unsafe_globals_in_checkpoint', change)
            patch.setattr(zlib, 'decompressobj', lambda *a, **k: pytest.fail('a member was inflated'))
            with pytest.raises(UnsafeCheckpointError, match='the file changed while it was checked and loaded') \
                    as info:
                safe_load_local(path)
        assert path in str(info.value)
        if change is scan_then_replace:  # the path now holds the bomb: refused as such
            with pytest.raises(UnsafeCheckpointError, match='is compressed'):
                safe_load_local(path)
            torch.save(dict(state_dict=weights), path)
    assert torch.equal(safe_load_local(path)['state_dict']['w'], weights['w'])  # unchanged: loads


def test_zip_checkpoint_with_extra_pickle_member_is_scanned(tmp_path):
    """A second ``.pkl`` member torch would not read is still refused: nothing in the file may reference code."""
    path = str(tmp_path / 'two_pickles.pth')
    buf = io.BytesIO()
    torch.save(dict(state_dict={}), buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(path, 'w') as dst:
        for item in src.namelist():
            dst.writestr(item, src.read(item))
        dst.writestr('archive/extra.pkl', pickle.dumps(os.system, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system|os\.system"):
        safe_load_local(path)


# ------------------------------------------------------------------ zip containers that hide, bombs
def test_compressed_members_are_refused_before_they_are_inflated(tmp_path, monkeypatch):
    """torch.save never compresses; torch would inflate a compressed record whatever its size. A 4 MiB
    tensor record (or data.pkl) deflated to a few KiB is refused from the zip directory, before
    anything is read or inflated (the inflaters are made to fail)."""
    import zlib
    for member in ('data/0', 'data.pkl'):
        path = str(tmp_path / f'bomb_{member.replace("/", "_")}.pth')
        corpus.write_compressed_bomb(path, 4 << 20, member=member)
        assert os.path.getsize(path) < 64 << 10
        with monkeypatch.context() as patch:
            patch.setattr(zlib, 'decompressobj', lambda *a, **k: pytest.fail('a member was inflated'))
            with pytest.raises(UnsafeCheckpointError, match=f"zip member '[^']*{member}' is compressed") as info:
                safe_load_local(path)
        assert path in str(info.value) and 'decompression bomb' in str(info.value)


def test_member_declaring_another_size_than_it_stores_is_refused(tmp_path):
    """A stored member whose declared (uncompressed) size differs from its stored size."""
    path = str(tmp_path / 'sizes.pth')
    corpus.write_members(path, corpus.torch_zip_members({'state_dict': {'w': torch.zeros(8)}}))
    data = bytearray(open(path, 'rb').read())
    with zipfile.ZipFile(path) as archive:
        name = next(i.filename for i in archive.infolist() if i.filename.endswith('data/0')).encode()
    central = data.find(b'PK\x01\x02')  # the member's central-directory entry (its name at offset 46)
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.find(b'PK\x01\x02', central + 4)
    data[central + 24:central + 28] = (1 << 30).to_bytes(4, 'little')  # declared uncompressed size: 1 GiB
    open(path, 'wb').write(bytes(data))
    with pytest.raises(UnsafeCheckpointError, match=r"data/0' declares 1073741824 bytes but stores 32"):
        safe_load_local(path)


def test_upper_case_and_duplicate_pickles_are_scanned_as_torch_reads_them(tmp_path):
    """torch's zip reader finds ``data.pkl`` ignoring case and takes the first of two equal names; the
    scan sees exactly that (and refuses duplicates), so the global is named by our allow-list check,
    never by torch's message (which advises ``weights_only=False``)."""
    payload = corpus.PAYLOADS['os_system_reduce'](str(tmp_path / 'marker'))
    upper = str(tmp_path / 'upper.pth')
    corpus.write_upper_case_pickle(upper, payload)
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_load_local(upper)
    message = str(info.value)
    assert "it references ['posix.system']" in message or "it references ['os.system']" in message, message
    assert 'weights_only' not in message
    duplicate = str(tmp_path / 'duplicate.pth')
    corpus.write_duplicate_pickle(duplicate, payload, pickle.dumps({'state_dict': {}}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="zip member 'archive/data.pkl' appears twice"):
        safe_load_local(duplicate)
    case_twin = str(tmp_path / 'case_twin.pth')
    corpus.write_members(case_twin, [('archive/data.pkl', pickle.dumps({}, protocol=2)),
                                     ('archive/DATA.pkl', payload), ('archive/version', b'3\n')])
    with pytest.raises(UnsafeCheckpointError, match='appears twice'):
        safe_load_local(case_twin)
    assert not osp.exists(tmp_path / 'marker')


def test_unsupported_global_message_of_torch_is_rewritten(tmp_path):
    """torch now writes "unsupported GLOBAL": the line that names the global is what the user sees."""
    from soc_mm.utils.checkpoint import _unpickler_reason
    err = pickle.UnpicklingError('Weights only load failed. In PyTorch 2.6, we changed the default ... '
                                 'weights_only=False ...\nTrying to load unsupported GLOBAL posix.system whose '
                                 'module posix is blocked.\nCheck the documentation of torch.load')
    assert _unpickler_reason(err) == 'Trying to load unsupported GLOBAL posix.system whose module posix is blocked.'


def test_numpy1_checkpoints_load_like_numpy2_ones(tmp_path):
    """Checkpoints written under numpy 1 reference ``numpy.core.multiarray.scalar`` / ``_reconstruct``:
    the same safe functions, accepted under both names (through torch's own weights-only unpickler)."""
    import numpy as np
    path = str(tmp_path / 'numpy1.pth')
    expected = corpus.numpy1_checkpoint(path)
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith('data.pkl')))
    assert b'numpy.core.multiarray' in data and b'numpy._core' not in data
    loaded = safe_load_local(path)
    for key, value in expected['meta'].items():
        assert type(loaded['meta'][key]) is type(value) and np.array_equal(loaded['meta'][key], value), key
    assert torch.equal(loaded['state_dict']['w'], expected['state_dict']['w'])


def test_huge_numpy_declarations_and_setattr_rebuilds_are_refused_clearly(tmp_path):
    cases = {
        'reconstruct': (corpus.huge_numpy_reconstruct(), r'declares a numpy array of shape \(137438953472,\)'),
        'setstate': (corpus.huge_numpy_setstate(), r'could not rebuild an object \(ValueError: .*size'),
        'setattr': (corpus.setattr_counter(), r"checkpoint\['meta'\] \(a Counter\) was rebuilt with attributes "
                    r"\['most_common'\] that replace its type's own"),
        'shadow': (corpus.history_buffer_shadow(), r"\(a HistoryBuffer\) was rebuilt with attributes "
                   r"\['_statistics_methods'\]"),
        'registry': (corpus.history_buffer_registry(), r"changes the statistics methods \['mean'\] of MMEngine's "
                     'HistoryBuffer'),
        'build_on_set': (corpus.build_on_set(), r'could not rebuild an object \(AttributeError'),
    }
    for name, (payload, expected) in cases.items():
        for container, write in (('zip', corpus.write_zip), ('legacy', corpus.write_legacy)):
            path = str(tmp_path / f'{name}.{container}.pth')
            write(path, payload)
            with pytest.raises(UnsafeCheckpointError, match=expected) as info:
                safe_load_local(path)
            assert path in str(info.value), (name, container)
    from mmengine.logging import HistoryBuffer
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean  # the registry was restored
    assert corpus.planted_globals() == []


def _state_with(model, key, value):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state[key] = value
    return state


def test_non_finite_and_integer_weights_are_refused_naming_the_tensor(tmp_path, mmengine_safe_scheme):
    from mmengine.config import Config
    from soc_mm.apis import init_model
    from soc_mm.utils.checkpoint import CheckpointValueError
    _, model = _tiny_soc()
    key = next(k for k, v in model.state_dict().items() if v.is_floating_point() and v.numel() > 4)
    weight = model.state_dict()[key]
    nan = weight.clone().flatten()
    nan[[0, 2]] = float('nan')
    nan[3] = float('inf')
    bad = {'nan': (nan.view_as(weight), f'{key}: 2 NaN and 1 inf of {weight.numel()} values'),
           'int': (weight.to(torch.int32), f"{key}: torch.int32 values for the model's torch.float32 tensor")}
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.text_encoder.model_path = TEXT_ENCODER
    for kind, (value, expected) in bad.items():
        path = str(tmp_path / f'{kind}.pth')
        torch.save(dict(state_dict=_state_with(model, key, value)), path)
        with pytest.raises(CheckpointValueError) as info:
            init_model(cfg, path)
        assert expected in str(info.value) and path in str(info.value)
        with pytest.raises(CheckpointValueError, match=re.escape(expected)):  # also with strict=False
            load_checkpoint_to_model(model, safe_load_local(path), path, strict=False)
        with pytest.raises(CheckpointValueError, match=re.escape(expected)):  # tools/test.py, also --non-strict
            _tools_test(tools_test_args(path, work_dir=str(tmp_path / 'w'), non_strict=kind == 'int',
                                   cfg_options={'model.text_encoder.model_path': TEXT_ENCODER}))


def test_converter_refuses_non_finite_and_integer_weights(tmp_path):
    """``convert_official_checkpoint`` (all ``tools/model_converters/soc_official_to_mm.py`` runs)."""
    from conftest import FIXTURE_ROOT
    official = torch.load(osp.join(FIXTURE_ROOT, 'common', 'official_state_dict.pt'), weights_only=True)
    key = next(k for k, v in official.items() if k.endswith('.weight') and v.is_floating_point() and v.numel() > 1)
    for kind in ('nan', 'int'):
        state = dict(official)
        state[key] = official[key].clone()
        if kind == 'nan':
            state[key].view(-1)[1] = float('nan')
        else:
            state[key] = state[key].to(torch.int64)
        src, dst = str(tmp_path / f'{kind}.pth.tar'), tmp_path / f'{kind}_converted.pth'
        torch.save(dict(model_state_dict=state), src)
        with pytest.raises(ConversionError) as info:
            convert_official_checkpoint(src, str(dst))
        err = str(info.value)
        expected = (f'{key}: 1 NaN and 0 inf' if kind == 'nan'
                    else f'{key}: torch.int64 values for a floating-point parameter')
        assert expected in err and src in err, err
        assert not dst.exists() and not [n for n in os.listdir(tmp_path) if 'converted' in n or n.startswith('.')]


# ------------------------------------------------------------------ remote checkpoints
@pytest.fixture
def http_checkpoint(tmp_path):
    """A malicious zip checkpoint served on 127.0.0.1 (a thread, shut down after the test):
    ``(url, marker, requests)``; ``requests`` lists the paths asked for."""
    import http.server
    import threading
    marker = str(tmp_path / 'http_marker')
    corpus.write_zip(str(tmp_path / 'evil.pth'), corpus.PAYLOADS['os_system_reduce'](marker))
    body = open(tmp_path / 'evil.pth', 'rb').read()
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requests.append(self.path)
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.1), daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}/iter_8.pth', marker, requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_remote_checkpoints_are_refused_in_every_entry_point(http_checkpoint, tmp_path, monkeypatch,
                                                             mmengine_safe_scheme):
    """``--resume URL``, ``load_from=URL`` (tools/train.py), tools/test.py, init_model, the converter and
    MMEngine's loader as our tools install it: refused naming the scheme, nothing downloaded, nothing run."""
    from mmengine.config import Config
    from mmengine.runner.checkpoint import CheckpointLoader
    from soc_mm.apis import init_model
    url, marker, requests = http_checkpoint
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))  # where a download would land
    work = str(tmp_path / 'work')
    for error, args in ((ResumeCheckpointError, tools_train_args(work_dir=work, resume=url)),
                        (CheckpointFormatError, tools_train_args(work_dir=work, cfg_options={'load_from': url}))):
        with pytest.raises(error) as info:
            _tools_train(args)
        assert '(http://)' in str(info.value) and url in str(info.value), str(info.value)
    with pytest.raises(CheckpointFormatError, match=r'remote checkpoints \(http://\) are not'):
        _tools_test(tools_test_args(url, work_dir=work))
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.text_encoder.model_path = TEXT_ENCODER
    with pytest.raises(CheckpointFormatError, match=r'remote checkpoints \(http://\)'):
        init_model(cfg, url)
    with pytest.raises(ConversionError, match=r'\(http://\)'):
        convert_official_checkpoint(url, str(tmp_path / 'converted.pth'))
    assert not osp.exists(tmp_path / 'converted.pth')
    for remote in (url, url.replace('http://', 'https://'), 's3://bucket/iter_8.pth', 'open-mmlab://resnet50_v1c',
                   'torchvision://resnet50', 'pavi://model/1'):
        with pytest.raises(CheckpointFormatError, match=re.escape(f'({remote.split("://")[0]}://)')):
            CheckpointLoader.load_checkpoint(remote, map_location='cpu')
    assert requests == [] and not osp.exists(marker)
    assert not osp.exists(tmp_path / 'torch_home')


def test_remote_resume_paths_are_refused_by_resume_resolution(tmp_path):
    from mmengine.config import Config
    from soc_mm.engine import ResumeCheckpointError, find_resume_checkpoint, resolve_resume_checkpoint
    for remote in ('https://example.com/iter_8.pth', 's3://bucket/work/iter_8.pth', 'torchvision://resnet50'):
        cfg = Config(dict(work_dir=str(tmp_path), resume=True, load_from=remote))
        with pytest.raises(ResumeCheckpointError, match=re.escape(f'--resume {remote}: remote checkpoints')):
            resolve_resume_checkpoint(cfg, log=lambda _: None)
    (tmp_path / 'last_checkpoint').write_text('https://example.com/iter_8.pth')
    with pytest.raises(ResumeCheckpointError, match=r'a remote checkpoint \(https://\), not loaded'):
        find_resume_checkpoint(str(tmp_path), log=lambda _: None)


# ------------------------------------------------------------------ tools/train.py and tools/test.py
#: what each tool's ``main`` calls to read its config and checkpoints (``_tools_train`` / ``_tools_test``
#: below run the same calls; ``test_tools_call_the_library_loading_path`` checks the tools still do)
TOOL_CALLS = {
    'train.py': ['install_safe_checkpoint_loading', 'config_for_training', 'resolve_resume_checkpoint',
                 'enforce_strict_resume'],
    'test.py': ['install_safe_checkpoint_loading', 'config_for_testing', 'load_checkpoint_to_model'],
}




def _tools_train(args):
    """What ``tools/train.py``'s ``main`` does with ``args`` before building the runner (the safe loader is
    installed by the ``mmengine_safe_scheme`` fixture): the config, every checkpoint it names read safely;
    returns the checkpoint it resumes from (None: not resuming)."""
    return resolve_resume_checkpoint(config_for_training(args), log=lambda _: None)


def _tools_test(args):
    """What ``tools/test.py``'s ``main`` does with ``args`` up to ``runner.test()`` (the safe loader is installed
    by the ``mmengine_safe_scheme`` fixture): the config and the checkpoint read safely, the runner built, the
    checkpoint loaded into its model (strictly unless ``args.non_strict``)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    cfg, checkpoint = config_for_testing(args)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    load_checkpoint_to_model(runner.model, checkpoint, args.checkpoint, strict=not args.non_strict,
                             logger=runner.logger)


def _main_calls(script):
    """The names of the functions ``tools/<script>``'s ``main`` calls, in order (its source parsed, not run)."""
    tree = ast.parse(open(osp.join(REPO_ROOT, 'tools', script)).read())
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == 'main')
    calls = sorted((node for node in ast.walk(main) if isinstance(node, ast.Call)),
                   key=lambda node: (node.lineno, node.col_offset))
    return [getattr(node.func, 'id', getattr(node.func, 'attr', None)) for node in calls]


@pytest.mark.parametrize('script', sorted(TOOL_CALLS))
def test_tools_call_the_library_loading_path(script):
    """The tools install the safe loader first, then read their checkpoints only through the library calls the
    tests below make: a tool that stopped doing so fails here."""
    calls = _main_calls(script)
    assert [c for c in calls if c in TOOL_CALLS[script]] == TOOL_CALLS[script], calls
    assert not {'load', 'load_checkpoint', '_load_checkpoint', 'safe_load_local'} & set(calls), calls


def test_tools_test_refuses_the_corpus(rows, tmp_path, mmengine_safe_scheme):
    for path, _marker, name in rows:
        with pytest.raises(UnsafeCheckpointError) as info:
            _tools_test(tools_test_args(path, work_dir=str(tmp_path)))
        assert EXPECTED_GLOBAL[name] in str(info.value) and path in str(info.value), str(info.value)
    _assert_nothing_ran(rows)


def test_tools_in_a_subprocess_refuse_and_run_nothing(rows, tmp_path):
    """``python tools/test.py CONFIG CKPT`` and ``python tools/train.py CONFIG --resume CKPT`` as users run them:
    exit status 1, one line naming the global, no traceback, nothing run."""
    picked = {osp.basename(r[0]): r for r in rows}
    runs = [('test.py', picked['os_system_reduce.zip.pth'], ['{path}']),
            ('train.py', picked['getattr_chain_eval.legacy.pth'], ['--resume', '{path}'])]
    for script, (path, marker, name), extra in runs:
        proc = subprocess.run([sys.executable, osp.join(REPO_ROOT, 'tools', script), TINY_CONFIG,
                               *(a.format(path=path) for a in extra), '--work-dir', str(tmp_path / 'w')],
                              capture_output=True, text=True, env=subprocess_env(), timeout=300, cwd=str(tmp_path))
        assert proc.returncode == 1, (script, proc.stderr[-2000:])
        assert f'tools/{script}: error:' in proc.stderr and EXPECTED_GLOBAL[name] in proc.stderr, proc.stderr[-2000:]
        assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
        assert not osp.exists(marker)
    assert corpus.planted_globals() == []


def _tiny_soc(**model_overrides):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from soc_mm.registry import MODELS
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.text_encoder.model_path = TEXT_ENCODER
    cfg.merge_from_dict({f'model.{k}': v for k, v in model_overrides.items()})
    init_default_scope('soc_mm')
    return cfg, MODELS.build(cfg.model)


def _wrong_checkpoints(tmp_path):
    """A 7-query checkpoint for the 5-query model, other mask-head channels, keys that match nothing."""
    paths = {}
    _, seven = _tiny_soc(**{'num_queries': 7, 'voc.num_queries': 7, 'voc.num_frame_queries': 7})
    paths['queries'] = str(tmp_path / 'seven_queries.pth')
    torch.save(dict(state_dict=seven.state_dict()), paths['queries'])
    _, fresh = _tiny_soc()
    state = fresh.state_dict()
    mask_keys = [k for k in state if 'mask_head' in k or 'dynamic' in k or 'controller' in k]
    assert mask_keys, sorted(state)[:20]
    other = dict(state)
    other[mask_keys[0]] = torch.zeros(*(s + 3 for s in state[mask_keys[0]].shape))
    paths['mask_channels'] = str(tmp_path / 'mask_channels.pth')
    torch.save(dict(state_dict=other), paths['mask_channels'])
    paths['foreign'] = str(tmp_path / 'foreign.pth')
    torch.save(dict(state_dict={'resnet.conv1.weight': torch.zeros(64, 3, 7, 7)}), paths['foreign'])
    return paths, mask_keys[0]


def test_strict_loading_names_every_mismatch(tmp_path):
    paths, mask_key = _wrong_checkpoints(tmp_path)
    _, model = _tiny_soc()
    expected = {'queries': 'size mismatch', 'mask_channels': mask_key, 'foreign': 'resnet.conv1.weight'}
    for kind, path in paths.items():
        with pytest.raises(CheckpointMismatchError) as info:
            load_checkpoint_to_model(model, safe_load_local(path), path)
        assert expected[kind] in str(info.value) and path in str(info.value), (kind, str(info.value)[:500])
    foreign = str(pytest.raises(CheckpointMismatchError, load_checkpoint_to_model, model,
                                safe_load_local(paths['foreign']), paths['foreign']).value)
    assert 'missing keys' in foreign and 'unexpected key' in foreign
    # --non-strict: the fitting tensors load, the rest stays as it was (warnings, no error)
    torch.manual_seed(1)
    _, model = _tiny_soc()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = safe_load_local(paths['mask_channels'])
    load_checkpoint_to_model(model, other, paths['mask_channels'], strict=False)
    after = model.state_dict()
    assert torch.equal(after[mask_key], before[mask_key])
    changed = [k for k in after if not torch.equal(after[k], before[k])]
    assert changed and all(torch.equal(after[k], other['state_dict'][k]) for k in changed)


def test_tools_test_refuses_a_checkpoint_that_does_not_fit(tmp_path, mmengine_safe_scheme):
    paths, _ = _wrong_checkpoints(tmp_path)
    with pytest.raises(CheckpointMismatchError) as info:
        _tools_test(tools_test_args(paths['queries'], work_dir=str(tmp_path / 'w'),
                               cfg_options={'model.text_encoder.model_path': TEXT_ENCODER}))
    message = str(info.value)
    assert 'does not fit the model' in message and 'size mismatch' in message and '--non-strict' in message
    assert paths['queries'] in message


def test_tools_train_refuses_the_corpus_as_resume_and_load_from(rows, tmp_path, mmengine_safe_scheme):
    work = str(tmp_path / 'work')
    for path, _marker, name in rows:
        for error, args in ((ResumeCheckpointError, tools_train_args(work_dir=work, resume=path)),
                            (UnsafeCheckpointError, tools_train_args(work_dir=work, cfg_options={'load_from': path}))):
            with pytest.raises(error) as info:
                _tools_train(args)
            message = str(info.value)
            assert EXPECTED_GLOBAL[name] in message and path in message, (error.__name__, message)
    _assert_nothing_ran(rows)


def test_tools_train_auto_resume_skips_a_malicious_latest_checkpoint(rows, tmp_path, mmengine_safe_scheme):
    import shutil
    work = tmp_path / 'work'
    work.mkdir()
    path, marker, name = next(r for r in rows if r[2] == 'getattr_chain_exec')
    shutil.copy(path, work / 'iter_10.pth')
    (work / 'last_checkpoint').write_text(str(work / 'iter_10.pth'))
    with pytest.raises(ResumeCheckpointError) as info:
        _tools_train(tools_train_args(work_dir=str(work), resume='auto'))
    message = str(info.value)
    assert 'no complete checkpoint to resume from' in message and EXPECTED_GLOBAL[name] in message, message
    assert not osp.exists(marker) and corpus.planted_globals() == []


def test_mmengine_checkpoint_loads_in_a_fresh_process(tmp_path):
    """No HistoryBuffer exists yet in a fresh tools process (its statistics registry is still empty)."""
    path = str(tmp_path / 'epoch_1.pth')
    _mmengine_like_checkpoint(path)
    code = ('import sys\nfrom soc_mm.utils.checkpoint import safe_load_local\n'
            'ckpt = safe_load_local(sys.argv[1])\n'
            'print("MEAN", ckpt["message_hub"]["log_scalars"]["train/loss"].mean())\n')
    proc = run_python(code, path, timeout=120)
    assert 'MEAN 2.333' in proc.stdout


# ------------------------------------------------------------------ the official-checkpoint converter
def test_converter_refuses_the_corpus(rows, tmp_path):
    """``convert_official_checkpoint`` (what ``tools/model_converters/soc_official_to_mm.py`` runs; its command
    line: tests/test_official/test_converter.py)."""
    dst = tmp_path / 'converted.pth'
    for path, _marker, name in rows:
        with pytest.raises(ConversionError) as info:
            convert_official_checkpoint(path, str(dst))
        err = str(info.value)
        assert EXPECTED_GLOBAL[name] in err and path in err, err
        assert not dst.exists()
    _assert_nothing_ran(rows)


# ------------------------------------------------------------------ soc_mm.apis.init_model
def test_init_model_refuses_the_corpus_and_wrong_checkpoints(rows, tmp_path):
    from mmengine.config import Config
    from soc_mm.apis import init_model
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.text_encoder.model_path = TEXT_ENCODER
    for path, _marker, name in rows:
        with pytest.raises(UnsafeCheckpointError, match=EXPECTED_GLOBAL[name].replace('.', r'\.')):
            init_model(cfg, path)
    _assert_nothing_ran(rows)
    paths, _ = _wrong_checkpoints(tmp_path)
    with pytest.raises(CheckpointMismatchError, match='size mismatch'):
        init_model(cfg, paths['queries'])
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointFormatError, match='empty file'):
        init_model(cfg, str(empty))


# ------------------------------------------------------------------ tools/demo/web_demo.py
def test_web_demo_refuses_the_corpus(rows):
    """The web demo's model loading (``soc_mm.apis.web_demo.load_model``: what ``python
    tools/demo/web_demo.py --config --checkpoint`` serves) refuses every corpus file before building
    anything, naming the global."""
    from soc_mm.apis.web_demo import load_model
    for path, _marker, name in rows:
        with pytest.raises(UnsafeCheckpointError, match=EXPECTED_GLOBAL[name].replace('.', r'\.')):
            load_model(TINY_CONFIG, path, text_encoder=TEXT_ENCODER)
    _assert_nothing_ran(rows)


def test_allowed_globals_that_allocate_are_named_not_called(tmp_path):
    """torch's weights-only unpickler calls any allowed global a pickle asks it to: bytearray(n), a storage
    type, a legacy tensor constructor, numpy.ndarray(shape) would allocate 64 GiB from a few bytes. Each is
    refused before loading, also when the callee comes back from the memo; numpy's scalar is bounded."""
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, (payload, expected) in corpus.allocating_calls().items():
        for container, write in (('zip', corpus.write_zip), ('legacy', corpus.write_legacy)):
            path = str(tmp_path / f'{name}.{container}.pth')
            write(path, payload)
            with pytest.raises(UnsafeCheckpointError) as info:
                safe_load_local(path)
            assert expected in str(info.value) and path in str(info.value), (name, str(info.value))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < (1 << 20)  # KiB: < 1 GiB more


def test_scan_follows_callees_through_the_memo():
    from soc_mm.utils.pickle_scan import DYNAMIC, scan_pickle
    ok = pickle.dumps({'a': collections.OrderedDict(x=1)}, protocol=2)
    scan = scan_pickle(io.BytesIO(ok))
    assert scan.called == ['collections.OrderedDict'] and scan.referenced == ['collections.OrderedDict']
    memo = corpus.allocating_calls(8)['called_from_memo'][0]
    assert scan_pickle(io.BytesIO(memo)).called == ['builtins.bytearray']
    built = b'\x80\x02' + corpus._call(corpus._call(corpus._g('builtins', 'set'), b')'), b')') + b'.'
    assert scan_pickle(io.BytesIO(built)).called == ['builtins.set', DYNAMIC]  # a call of a call's result
    with pytest.raises(ValueError, match='stack underflow'):
        scan_pickle(io.BytesIO(b'\x80\x02R.'))


def test_zip_with_two_directories_is_refused_before_torch_inflates_anything(tmp_path):
    import resource
    path = str(tmp_path / 'two_directories.pth')
    corpus.write_two_directories(path, 1 << 28)
    assert os.path.getsize(path) < (1 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UnsafeCheckpointError, match=r"zip member 'archive/data.pkl' is at byte \d+ with \d+ "
                       r'bytes for Python but at \d+ with 268435464 bytes for torch \(two zip directories\)'):
        safe_load_local(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < (200 << 10)  # KiB: nothing inflated


def test_weights_checked_as_the_model_will_hold_them():
    """Values are checked after the cast to the model's dtype, through Tensor's own methods."""
    reference = {'w': torch.zeros(3), 'n': torch.zeros(3, dtype=torch.long)}
    cases = {
        'float64 overflow': ({'w': torch.full((3, ), 1e300, dtype=torch.float64)},
                             'w: 0 NaN and 3 inf once cast to torch.float32 of 3 values'),
        'complex': ({'w': torch.ones(3, dtype=torch.complex64)},
                    "w: complex values for the model's torch.float32 tensor (the imaginary part would be dropped)"),
        'sparse': ({'w': torch.ones(3).to_sparse()}, 'w: a torch.sparse_coo tensor'),
        'expanded': ({'w': torch.zeros(1).expand(3)}, 'w: 3 values viewed from a storage of 4 bytes'),
        'int key': ({5: torch.zeros(3)}, '5: a key of type int'),
    }
    for name, (state_dict, expected) in cases.items():
        with pytest.raises(CheckpointValueError) as info:
            check_state_dict_values(state_dict, 'ckpt.pth', reference=reference)
        assert expected in str(info.value), (name, str(info.value))
    shadowed = torch.full((3, ), float('nan'))
    shadowed.numel = complex  # numel() == 0j: a check that asked the instance would skip the NaN
    with pytest.raises(CheckpointValueError, match=r"w: a Tensor carrying attributes \['numel'\]"):
        check_state_dict_values({'w': shadowed}, 'ckpt.pth', reference=reference)
    check_state_dict_values({'w': torch.ones(3, dtype=torch.float64), 'n': torch.ones(3, dtype=torch.long)},
                            'ckpt.pth', reference=reference)  # finite after the cast, integers for integers


def test_objects_are_made_and_built_only_as_pickle_and_mmengine_write_them(tmp_path):
    """A HistoryBuffer made by REDUCE (its __init__ runs np.array on an OrderedDict whose __array_interface__
    points anywhere in memory), a BUILD of an object read back from the memo (re-sizing a numpy dtype an array
    already uses), a tensor with backward hooks and an optimizer state that views 2^34 values of an 8-byte
    storage are refused, naming what they do."""
    cases = {
        'history_buffer_reduce': (corpus.history_buffer_init_on(corpus.ordered_dict_with('__array_interface__',
                                                                                         b'}')),
                                  'HistoryBuffer (called by REDUCE; only NEWOBJ, as MMEngine writes it)'),
        'dtype_built_twice': (corpus.dtype_built_twice(), 'BUILD of an object read back from the memo'),
        'backward_hooks': (corpus.tensor_with_backward_hooks(), "checkpoint['w'] is a tensor with backward hooks"),
    }
    for name, (payload, expected) in cases.items():
        path = str(tmp_path / f'{name}.pth')
        if name == 'backward_hooks':
            members = [(n, payload if n.endswith('data.pkl') else d)
                       for n, d in corpus.torch_zip_members({'w': torch.zeros(2)})]
            corpus.write_members(path, members)
        else:
            corpus.write_zip(path, payload)
        with pytest.raises(UnsafeCheckpointError) as info:
            safe_load_local(path)
        assert expected in str(info.value), (name, str(info.value))
    expanded = str(tmp_path / 'expanded.pth')
    torch.save({'state_dict': {}, 'optimizer': {'state': {0: {'exp_avg': torch.zeros(1).expand(1 << 34)}}}}, expanded)
    with pytest.raises(UnsafeCheckpointError, match=re.escape("checkpoint['optimizer']['state'][0]['exp_avg'] is a "
                                                              'view of 17179869184 values over a storage of 4 bytes')):
        safe_load_local(expanded)
