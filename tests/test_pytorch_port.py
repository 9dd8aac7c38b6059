"""A PyTorch-style CIFAR training script (the shape of the well-known pytorch-cifar one) runs
on minidl with only its imports changed: the API users port from is the one they find.
Synthetic data, a two-block ResNet, CPU and the (emulated) GPU."""
import numpy as np
import pytest

import minidl as torch                       # the only change from a PyTorch script: imports
import minidl.nn as nn
import minidl.nn.functional as F
import minidl.optim as optim


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super(BasicBlock, self).__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride,
                          bias=False),
                nn.BatchNorm2d(self.expansion * planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10):
        super(ResNet, self).__init__()
        self.in_planes = 8
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = self._make_layer(block, 8, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 16, num_blocks[1], stride=2)
        self.linear = nn.Linear(16 * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


def _train(net, data, device, criterion, optimizer):
    net.train()
    train_loss = correct = total = 0
    for batch_idx, (inputs, targets) in enumerate(data):
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = net(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        train_loss += loss.item()
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
    return train_loss / (batch_idx + 1), 100. * correct / total


def _test(net, data, device, criterion):
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, targets in data:
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = net(inputs)
            criterion(outputs, targets)
            _, predicted = outputs.max(1)
            total += targets.size(0)
            correct += predicted.eq(targets).sum().item()
    return 100. * correct / total


def test_a_pytorch_cifar_script_runs_with_only_its_imports_changed(device, tmp_path):
    if device == "cuda":
        assert torch.cuda.is_available()
    torch.manual_seed(0)
    net = ResNet(BasicBlock, [1, 1]).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)
    rng = np.random.default_rng(0)
    data = [(torch.tensor(rng.standard_normal((8, 3, 8, 8)).astype(np.float32)),
             torch.tensor(rng.integers(0, 10, 8))) for _ in range(2)]
    losses = []
    for epoch in range(4):
        loss, acc = _train(net, data, device, criterion, optimizer)
        losses.append(loss)
        assert 0.0 <= acc <= 100.0
        scheduler.step()
    assert losses[-1] < losses[0]                        # it learns the two batches
    acc = _test(net, data, device, criterion)
    state = {"net": net.state_dict(), "acc": acc, "epoch": 3}
    torch.save(state, str(tmp_path / "ckpt.pth"))
    checkpoint = torch.load(str(tmp_path / "ckpt.pth"))
    other = ResNet(BasicBlock, [1, 1]).to(device)
    other.load_state_dict(checkpoint["net"])
    assert checkpoint["acc"] == acc and checkpoint["epoch"] == 3
    assert _test(other, data, device, criterion) == acc
    assert optimizer.param_groups[0]["lr"] == pytest.approx(
        0.05 * (1 + np.cos(np.pi * 4 / 200)) / 2)
