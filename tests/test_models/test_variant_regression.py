"""The tiny MeViS-demo model (QueryPropagationSOC + MeanPoolRoBERTaTextEncoder + MotionAwareVOC) and the plain
tiny SOC compute what they computed when the demo's options were arguments of SOC, VOC and
RoBERTaTextEncoder: a state dict saved by that code loads strictly into the configs of today and gives the
saved losses and tensors. The fixture and how it was made: variant_regression_fixture.py (beside this file)."""
import os.path as osp

import pytest
import torch

import variant_regression_fixture as make_fixture

FIXTURE = make_fixture.DEFAULT_OUT
# float32 summation order differs between CPUs (AVX2 vs AVX-512 kernels): 1e-5 of each tensor's largest
# magnitude (the golden comparison allows 1e-4); a changed model moves these by orders of magnitude more
RTOL_OF_MAX = 1e-5


def assert_same(value, saved, what):
    tol = RTOL_OF_MAX * max(1.0, saved.abs().max().item())
    torch.testing.assert_close(value, saved, rtol=0, atol=tol, msg=f'{what} (tolerance {tol:.2e})')


@pytest.fixture(scope='module')
def fixture():
    return torch.load(FIXTURE, weights_only=True)


def test_fixture_is_small():
    assert osp.getsize(FIXTURE) < 2e6


@pytest.mark.parametrize('name', ['mevis', 'tiny'])
def test_saved_state_dict_loads_strictly_and_reproduces_the_outputs(fixture, name):
    torch.set_num_threads(1)
    model = make_fixture.build_model(name)
    if name == 'mevis':
        assert [type(m).__name__ for m in (model, model.text_encoder, model.voc)] == [
            'QueryPropagationSOC', 'MeanPoolRoBERTaTextEncoder', 'MotionAwareVOC']
    else:
        assert [type(m).__name__ for m in (model, model.text_encoder, model.voc)] == [
            'SOC', 'RoBERTaTextEncoder', 'VOC']
    saved = fixture[name]
    # the state dict of the previous code's model (its keys, the shared random weights): loads strictly
    make_fixture.load_weights(model, make_fixture.state_dict_of(fixture['weights'], saved['keys']))
    losses, tensors = make_fixture.run(model, fixture['clips'])
    assert losses.keys() == saved['losses'].keys()
    for key, value in saved['losses'].items():
        assert_same(losses[key], value, f'{name}: {key}')
    assert tensors.keys() == saved['tensors'].keys()
    for key, value in saved['tensors'].items():
        assert_same(tensors[key], value, f'{name}: {key}')
