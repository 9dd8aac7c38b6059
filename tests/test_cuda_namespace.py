"""minidl.cuda answers torch.cuda's everyday questions (is_available, device_count, ...),
truthfully on a machine without a GPU, and on the (emulated) GPU."""
import numpy as np
import pytest

import minidl
from minidl import backend


def test_without_a_gpu_the_answers_are_no_and_the_rest_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "cuda_device_count", lambda: 0)
    assert minidl.cuda.is_available() is False and minidl.cuda.device_count() == 0
    for call in (minidl.cuda.current_device, minidl.cuda.synchronize,
                 minidl.cuda.memory_allocated, minidl.cuda.empty_cache):
        with pytest.raises(RuntimeError, match=r"minidl\.cuda\.\w+: no GPU is available"):
            call()
    minidl.cuda.manual_seed(3)                  # nothing to seed: fine, as in PyTorch
    with pytest.raises(ValueError, match="minidl.cuda.manual_seed: 'seed' must be a non-negative "
                                         "int, got -1"):
        minidl.cuda.manual_seed(-1)


@pytest.mark.cuda
def test_on_a_gpu():
    assert minidl.cuda.is_available() and minidl.cuda.device_count() >= 1
    assert minidl.cuda.current_device() == 0
    minidl.cuda.synchronize()
    minidl.cuda.manual_seed(5)
    a = minidl.randn(4, device="cuda").numpy()
    minidl.cuda.manual_seed(5)
    np.testing.assert_array_equal(minidl.randn(4, device="cuda").numpy(), a)


@pytest.mark.cuda
@pytest.mark.real_gpu
def test_memory_allocated_counts_arrays_on_a_real_gpu():
    before = minidl.cuda.memory_allocated()
    x = minidl.zeros(1024, 256, device="cuda")
    assert minidl.cuda.memory_allocated() >= before + x.numel() * 4
    del x
    minidl.cuda.empty_cache()
