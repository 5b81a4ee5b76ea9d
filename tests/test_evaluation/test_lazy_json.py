"""LazyJsonObject / index_json_object: the values read one at a time equal json.load's, whatever the chunk
boundaries (inside keys, strings with escapes, multi-byte characters, numbers), malformed files and repeated
keys are errors naming the file and the place, and a pickled copy (what a worker process gets) holds the
index only and reads the file itself."""
import json
import multiprocessing
import os
import pickle
import random

import pytest

from soc_mm.datasets.utils import DuplicateKeyError
from soc_mm.evaluation.functional.lazy_json import LazyJsonObject, index_json_object
from soc_mm.evaluation.functional.mevis import load_mevis_mask_dict


def _random_object(rng):
    obj = {}
    for k in range(rng.randint(0, 25)):
        key = rng.choice(['a', 'é', '中', '"q\\', '7']) + str(k)
        obj[key] = rng.choice([
            None, 1, -2.5e3, 12345678901234567890, True, 'x\\"y' * rng.randint(0, 4),
            [{'size': [2, 3], 'counts': 'ab\\c' * rng.randint(0, 30)}, None],
            {'z': [1, 2, {'ü': False}]}, [], {}])
    return obj


@pytest.mark.parametrize('chunk_size', [1, 2, 3, 7, 64, 1 << 20])
def test_values_equal_json_load(tmp_path, chunk_size):
    rng = random.Random(chunk_size)
    path = str(tmp_path / 'x.json')
    for _ in range(40):
        obj = _random_object(rng)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(json.dumps(obj, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1, 4])))
        index = index_json_object(path, chunk_size=chunk_size)
        lazy = LazyJsonObject(path, index=index)
        assert list(lazy) == list(obj) and len(lazy) == len(obj)
        assert {k: lazy[k] for k in lazy} == obj
        with open(path, 'rb') as f:
            raw = f.read()
        for key, (start, end) in index.items():
            assert json.loads(raw[start:end]) == obj[key]
        assert lazy.get('missing') is None and 'missing' not in lazy


@pytest.mark.parametrize('text, message', [
    ('', "expected a json object '{' at byte 0, found the end of the file"),
    ('[1, 2]', "expected a json object '{' at byte 0, found '[1, 2]'"),
    ('{"a": 1,}', 'expected a key string at byte 8'),
    ('{"a": 1} {"b": 2}', 'expected the end of the file after the object at byte 9'),
    ('{"a" 1}', "expected ':' at byte 5"),
    ('{"a": 1', "expected ',' or '}' at byte 7, found the end of the file"),
    ('{"a": [1, 2}', 'is not valid json'),
    ('\ufeff{}', 'expected no byte-order mark'),
    ('{"a": ' + '[' * 200000 + ']' * 200000 + '}', 'nests its json deeper than Python can read'),
    ('{"a": ' + '7' * 5000 + '}', 'holds a value json cannot read here (Exceeds the limit'),
])
def test_malformed_files_name_the_place(tmp_path, text, message):
    path = str(tmp_path / 'bad.json')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    with pytest.raises(ValueError, match='mask_dict') as error:
        LazyJsonObject(path, 'mask_dict')
    assert message in str(error.value) and path in str(error.value)


def test_repeated_keys_and_missing_file(tmp_path):
    path = str(tmp_path / 'dup.json')
    with open(path, 'w') as f:
        f.write('{"1": [null], "2": [], "1": [null]}')
    with pytest.raises(DuplicateKeyError, match='<top level> has the key "1" more than once'):
        index_json_object(path)
    with open(path, 'w') as f:
        f.write('{"1": [{"size": [1, 1], "counts": "1", "counts": "2"}]}')
    lazy = LazyJsonObject(path)
    with pytest.raises(DuplicateKeyError, match=r'dup.json\["1"\].*"counts" more than once'):
        lazy['1']
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        load_mevis_mask_dict(str(tmp_path / 'nowhere.json'))
    with open(path, 'w') as f:
        f.write('[]')
    with pytest.raises(ValueError, match="must be one json object|expected a json object"):
        load_mevis_mask_dict(path)


def _read_in_child(lazy, key, queue):
    value = lazy[key]
    queue.put((lazy._fd, value))


def test_pickled_copy_holds_the_index_and_reads_in_another_process(tmp_path):
    path = str(tmp_path / 'm.json')
    obj = {str(i): [{'size': [4, 4], 'counts': 'x' * 1000}] * 3 for i in range(50)}
    with open(path, 'w') as f:
        json.dump(obj, f)
    lazy = LazyJsonObject(path)
    assert lazy['3'] == obj['3']  # opens the file in this process
    data = pickle.dumps(lazy)
    assert len(data) < os.path.getsize(path) / 10  # the index, not the values
    copy = pickle.loads(data)
    assert copy._fd is None and copy['49'] == obj['49']
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(lazy, '7', queue))
    child.start()
    fd_in_child, value = queue.get(timeout=120)
    child.join(60)
    assert value == obj['7'] and fd_in_child is not None
    # the file changed after indexing: reading from a fresh process refuses the stale index
    with open(path, 'w') as f:
        json.dump({'0': None}, f)
    with pytest.raises(RuntimeError, match='changed after it was indexed'):
        pickle.loads(data)['0']
