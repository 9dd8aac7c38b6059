"""CPU/GPU agreement: a ResNet-20 and a DenseNet-BC-100 training step on CUDA gives the same
loss and updated weights (to float32 rounding) as on the CPU from the same weights and inputs.
Skipped without CuPy and a GPU."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import nets

pytestmark = pytest.mark.cuda


def _step(model, x, y, device):
    model.to(device)
    opt = minidl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                           weight_decay=5e-4)
    loss = F.cross_entropy(model(x.to(device)), y.to(device))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item(), {k: v.numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name,batch", [("resnet20", 16), ("densenet_bc_100", 8)])
def test_training_step_matches_cpu(name, batch):
    minidl.manual_seed(0)
    cpu_model = nets.get_model(name)
    gpu_model = nets.get_model(name)
    gpu_model.load_state_dict(cpu_model.state_dict())
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((batch, 3, 32, 32), dtype=np.float32))
    y = minidl.tensor(rng.integers(0, 10, batch))
    loss_cpu, w_cpu = _step(cpu_model, x, y, "cpu")
    loss_gpu, w_gpu = _step(gpu_model, x, y, "cuda")
    assert abs(loss_cpu - loss_gpu) <= 1e-5 * max(1.0, abs(loss_cpu))
    for k in w_cpu:
        np.testing.assert_allclose(w_gpu[k], w_cpu[k], rtol=1e-4, atol=1e-5, err_msg=k)
