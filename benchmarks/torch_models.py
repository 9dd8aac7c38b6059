"""The PyTorch twins of minidl's nets used as the speed reference in bench_train.py.

Same architectures as ``nets.get_model(name)``: CIFAR ResNet-6n+2 with option-A shortcuts
(subsample, zero-pad channels) and DenseNet-BC (bottleneck, compression 0.5). Written here so
the benchmarks need nothing outside this repository; imported only when torch is installed.
"""
import torch
import torch.nn as tnn
import torch.nn.functional as tF


class BasicBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x):
        out = tF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.stride != 1 or self.pad:
            short = tF.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.pad))
        return tF.relu(out + short)


class CifarResNet(tnn.Module):
    def __init__(self, depth, num_classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = tnn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, width in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(BasicBlock(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width
        self.layers = tnn.Sequential(*layers)
        self.fc = tnn.Linear(64, num_classes)

    def forward(self, x):
        x = self.layers(tF.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


class DenseLayer(tnn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn1 = tnn.BatchNorm2d(cin)
        self.conv1 = tnn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(4 * growth)
        self.conv2 = tnn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, feats):
        x = torch.cat(feats, 1)
        return self.conv2(tF.relu(self.bn2(self.conv1(tF.relu(self.bn1(x))))))


class DenseNetBC(tnn.Module):
    def __init__(self, depth=100, growth=12, num_classes=10):
        super().__init__()
        n = (depth - 4) // 6
        c = 2 * growth
        self.conv = tnn.Conv2d(3, c, 3, 1, 1, bias=False)
        self.blocks = tnn.ModuleList()
        self.trans = tnn.ModuleList()
        for b in range(3):
            layers = tnn.ModuleList()
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            self.blocks.append(layers)
            if b < 2:
                out = c // 2
                self.trans.append(tnn.Sequential(tnn.BatchNorm2d(c), tnn.ReLU(),
                                                 tnn.Conv2d(c, out, 1, bias=False),
                                                 tnn.AvgPool2d(2)))
                c = out
        self.bn = tnn.BatchNorm2d(c)
        self.fc = tnn.Linear(c, num_classes)

    def forward(self, x):
        x = self.conv(x)
        for b, layers in enumerate(self.blocks):
            feats = [x]
            for layer in layers:
                feats.append(layer(feats))
            x = torch.cat(feats, 1)
            if b < 2:
                x = self.trans[b](x)
        return self.fc(tF.relu(self.bn(x)).mean((2, 3)))


def get_model(name):
    """The torch twin of ``nets.get_model(name)`` for the benchmarked names."""
    if name.startswith("resnet") and name[6:].isdigit():
        return CifarResNet(int(name[6:]))
    if name == "densenet_bc_100":
        return DenseNetBC(100, 12)
    raise ValueError(f"bench_train: no torch twin for {name!r} (have resnetN, densenet_bc_100)")
